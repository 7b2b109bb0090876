"""A real ext4 on a real loop device whose medium is the slow-disk double
(tests/doubles/slow_disk.py), and a real fsync storm to contend for it.

The loop device is the block device tests observe (/sys/block/<device>/stat, block
tracepoints); the double only decides how long each request to the medium takes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from collectors.cgroup import parse_uevent_devname

DOUBLE = Path(__file__).resolve().parent.parent / "doubles" / "slow_disk.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # pyfuse3 comes from Debian's python3-pyfuse3

# Storm loads started by fsync_storm, so that a disk's teardown can end those still
# writing into it (a leftover writer would keep the ext4, hence the loop device, busy).
_LOADS: list[tuple[Path, subprocess.Popen]] = []


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@dataclass
class SlowDisk:
    device: str  # the kernel's name, e.g. "loop3"
    dev_path: str
    major: int
    minor: int
    mountpoint: Path
    fuse_mountpoint: Path
    backing_file: Path
    log: Path
    _mounted: bool = field(default=False, repr=False)

    def stat_path(self) -> Path:
        return Path("/sys/block") / self.device / "stat"

    def read_ios(self) -> int:
        """Completed read requests of the device (first field of /sys/block/<dev>/stat)."""
        return int(self.stat_path().read_text().split()[0])

    def mount(self) -> None:
        # No block-bitmap prefetch: ext4lazyinit would read them in the background of
        # a test's measurements.
        sh("mount", "-o", "no_prefetch_block_bitmaps", self.dev_path, str(self.mountpoint))
        self._mounted = True

    def umount(self) -> None:
        sh("umount", str(self.mountpoint))
        self._mounted = False

    def remount(self) -> None:
        """Unmount and mount again: nothing of the file system stays in the page cache."""
        self.umount()
        self.mount()


def skip_unless_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("the slow-disk double needs root (FUSE mount, losetup, mount)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the slow-disk double needs /dev/fuse")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import pyfuse3, trio"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"the slow-disk double needs pyfuse3 for {SYSTEM_PYTHON} (python3-pyfuse3)")


def _device_name(major: int, minor: int) -> str:
    name = parse_uevent_devname(Path(f"/sys/dev/block/{major}:{minor}/uevent").read_text())
    if name is None:
        raise RuntimeError(f"no DEVNAME in uevent of block device {major}:{minor}")
    return name


def _wait_for_mount(proc: subprocess.Popen, fuse_mnt: Path, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slow-disk double exited {proc.returncode}: {log.read_text()}")
        if os.path.ismount(fuse_mnt) and (fuse_mnt / "disk").exists():
            return
        time.sleep(0.05)
    raise RuntimeError(f"slow-disk double did not mount within {timeout} s: {log.read_text()}")


def _end_loads_under(mountpoint: Path) -> None:
    for directory, proc in list(_LOADS):
        if directory == mountpoint or mountpoint in directory.parents:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            _LOADS.remove((directory, proc))


def _umount(path: Path) -> None:
    if not os.path.ismount(path):
        return
    if sh("umount", str(path), check=False).returncode != 0:
        sh("umount", "-l", str(path), check=False)  # busy: detach now, free when released


def _detach_loop(dev_path: str, device: str) -> None:
    # losetup -d of a loop device still held (lazily unmounted ext4) marks it
    # autoclear: the kernel detaches it once the last holder lets go.
    sh("losetup", "-d", dev_path, check=False)
    backing = Path("/sys/block") / device / "loop" / "backing_file"
    deadline = time.monotonic() + 10
    while backing.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _stop_double(proc: subprocess.Popen, fuse_mnt: Path) -> None:
    if proc.poll() is None:
        proc.terminate()  # the double unmounts itself on SIGTERM
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _umount(fuse_mnt)  # after a crash or kill: the mount outlives its daemon


@contextlib.contextmanager
def slow_disk(
    workdir: Path,
    *,
    size_mib: int = 256,
    read_latency_ms: float = 0.5,
    read_mbps: float = 400.0,
    write_latency_ms: float = 0.5,
    write_mbps: float = 40.0,
    flush_latency_ms: float = 50.0,
    loop_direct_io: bool = True,
) -> Iterator[SlowDisk]:
    """An ext4 mounted at `workdir/ext4`, on a loop device backed by the double's file.

    loop_direct_io: the loop driver reads and writes its backing file with O_DIRECT
    and async I/O, so several requests can be at the medium at once and its queue
    decides their order (buffered loop I/O serves one request at a time per loop worker).
    """
    skip_unless_possible()
    workdir = Path(workdir)
    fuse_mnt, ext4_mnt, log = workdir / "fuse", workdir / "ext4", workdir / "slow_disk.log"
    fuse_mnt.mkdir(parents=True, exist_ok=True)
    ext4_mnt.mkdir(parents=True, exist_ok=True)
    model = [
        "--size-mib", str(size_mib),
        "--read-latency-ms", str(read_latency_ms), "--read-mbps", str(read_mbps),
        "--write-latency-ms", str(write_latency_ms), "--write-mbps", str(write_mbps),
        "--flush-latency-ms", str(flush_latency_ms),
    ]
    with open(log, "wb") as log_f:
        proc = subprocess.Popen([SYSTEM_PYTHON, str(DOUBLE), str(fuse_mnt), *model],
                                stdout=log_f, stderr=subprocess.STDOUT)
    dev_path = device = None
    try:
        _wait_for_mount(proc, fuse_mnt, log)
        backing = fuse_mnt / "disk"
        dio = ["--direct-io=on"] if loop_direct_io else []
        dev_path = sh("losetup", "--find", "--show", *dio, str(backing)).stdout.strip()
        rdev = os.stat(dev_path).st_rdev
        major, minor = os.major(rdev), os.minor(rdev)
        device = _device_name(major, minor)
        # Everything written now, nothing later: lazy init would have ext4lazyinit
        # write inode tables in the background of a test's measurements.
        sh("mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev_path)
        disk = SlowDisk(device, dev_path, major, minor, ext4_mnt, fuse_mnt, backing, log)
        disk.mount()
        yield disk
    finally:
        _end_loads_under(ext4_mnt)
        _umount(ext4_mnt)
        if dev_path is not None:
            _detach_loop(dev_path, device or Path(dev_path).name)
        _stop_double(proc, fuse_mnt)


STORM = """
import os, sys
path, chunk, sync = sys.argv[1], int(sys.argv[2]), getattr(os, sys.argv[3])
buf = os.urandom(1 << 20)
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
while True:
    os.lseek(fd, 0, os.SEEK_SET)
    for _ in range(chunk):
        os.write(fd, buf)
    sync(fd)
"""


def fsync_storm(directory: Path, *, mib_per_fsync: int = 4, datasync: bool = True,
                name: str = "storm.dat") -> subprocess.Popen:
    """A separate process (think: a backup job) that rewrites `mib_per_fsync` MiB of
    `directory/name` and syncs it, over and over until killed.

    datasync (fdatasync): the rewritten data and one cache flush per round. A full
    fsync also commits the journal for the mtime change: a flush, the commit block and
    another flush, each step queued when the previous completes, and a reader's
    request slips in between them about one time in two; reads during such a storm
    are then half fast, half slow, and their median flips between the two."""
    directory = Path(directory)
    sync = "fdatasync" if datasync else "fsync"
    proc = subprocess.Popen([sys.executable, "-c", STORM, str(directory / name), str(mib_per_fsync), sync])
    _LOADS.append((directory, proc))
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    _LOADS[:] = [entry for entry in _LOADS if entry[1] is not proc]
