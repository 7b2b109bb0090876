"""The cgroup collector on this kernel's real hierarchy: a throwaway slice and unit
are made, a process is CPU-throttled, OOM-killed and does direct I/O in them, and
the collector must report what the kernel counted. Works on hybrid/v1 hosts (this
VM: the v1 memory and cpu controllers enforce) and on v2 hosts whose root already
delegates cpu, memory and io (the test does not change the root's controllers)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.paths import Paths
from collectors.cgroup import CgroupCollector, detect_layout
from tests.conftest import need_root
from tests.harness.blkio import count_io
from tests.unit.collector_helpers import make_collector, series

pytestmark = pytest.mark.integration

ROOT = Path("/sys/fs/cgroup")
MEM_LIMIT = 64 << 20
UNIT = "burn.service"
# 10% of a CPU in 10 ms periods: the burner is throttled in almost every period it
# runs in, even when other work on a busy machine leaves it little CPU.
PERIOD_US, QUOTA_US = 10_000, 1_000
BURN_S = 0.15


class ScratchCgroup:
    """One slice with one unit, in every hierarchy the layout has."""

    def __init__(self, slice_name: str) -> None:
        self.slice = slice_name
        self.layout = detect_layout(Paths())
        self.dirs: list[Path] = []  # unit dirs; their parents are the slice dirs

    def create(self) -> None:
        if self.layout.kind == "v2":
            have = set((ROOT / "cgroup.subtree_control").read_text().split())
            if not {"cpu", "memory", "io"} <= have:
                pytest.skip(f"v2 root delegates only {sorted(have)}; not changing it")
            s = ROOT / self.slice
            s.mkdir()
            self.dirs.append(s / UNIT)
            (s / "cgroup.subtree_control").write_text("+cpu +memory +io")
            (s / UNIT).mkdir()
            (s / UNIT / "memory.max").write_text(str(MEM_LIMIT))
            (s / UNIT / "cpu.max").write_text(f"{QUOTA_US} {PERIOD_US}")
            return
        hierarchies = [self.layout.v1[c] for c in ("systemd", "cpu", "cpuacct", "memory", "blkio")
                       if c in self.layout.v1]
        if self.layout.unified is not None:
            hierarchies.append(self.layout.unified)
        seen: set[Path] = set()
        for h in hierarchies:
            unit = (h / self.slice / UNIT)
            if unit.resolve() in seen:  # co-mounted cpu,cpuacct
                continue
            seen.add(unit.resolve())
            unit.mkdir(parents=True)
            self.dirs.append(unit)
        (self.layout.v1["memory"] / self.slice / UNIT / "memory.limit_in_bytes").write_text(str(MEM_LIMIT))
        cpu = self.layout.v1["cpu"] / self.slice / UNIT
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(QUOTA_US))
        if "blkio" in self.layout.v1:
            count_io(self.layout.v1["blkio"] / self.slice / UNIT, "/var/tmp")

    def run(self, code: str) -> int:
        """Run `code` in the unit; it starts only once it is inside. Returns the exit status."""
        p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(1)\n" + code],
                             stdin=subprocess.PIPE)
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(p.pid))
        assert p.stdin is not None
        p.stdin.write(b"x")
        p.stdin.close()
        return p.wait(timeout=60)

    def remove(self) -> None:
        for unit in self.dirs:
            for d in (unit, unit.parent):
                with contextlib.suppress(FileNotFoundError):
                    d.rmdir()


@pytest.fixture
def cgroup() -> Iterator[ScratchCgroup]:
    need_root()
    if detect_layout(Paths()).kind == "none":
        pytest.skip("no cgroup hierarchy mounted")
    cg = ScratchCgroup(f"inhosttest{uuid.uuid4().hex[:8]}.slice")
    try:
        cg.create()
        yield cg
    finally:
        cg.remove()


BURN = f"""
import time
end = time.process_time() + {BURN_S}
while time.process_time() < end:
    pass
"""
HOG = "b = b'x' * (256 << 20)\n"  # written, so every page is charged


def test_collector_reports_what_the_kernel_counted(cgroup, tmp_path):
    assert cgroup.run(BURN) == 0
    assert cgroup.run(HOG) == -signal.SIGKILL  # the OOM killer, in our memcg
    target = Path("/var/tmp") / f"infernode-host-test-{uuid.uuid4().hex[:8]}"
    try:
        status = cgroup.run(
            "import mmap, os\n"
            f"fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)\n"
            "buf = mmap.mmap(-1, 1 << 20)\n"
            "for _ in range(4):\n"
            "    os.write(fd, buf)\n"
            "os.close(fd)\n")
        assert status == 0
    finally:
        target.unlink(missing_ok=True)

    c = make_collector(CgroupCollector, Path("/"), slice=cgroup.slice)
    got = series(c.collect())
    unit_cg = f"/{cgroup.slice}/{UNIT}"

    def value(name, **labels):
        key = (name, tuple(sorted({"cgroup": unit_cg, "unit": UNIT, **labels}.items())))
        return got.get(key)

    assert {dict(k[1])["cgroup"] for k in got} == {f"/{cgroup.slice}", unit_cg}
    assert value("infernode_cgroup_cpu_usage_seconds_total") >= BURN_S * 0.9
    assert value("infernode_cgroup_cpu_throttled_periods_total") >= 1
    assert value("infernode_cgroup_cpu_throttled_seconds_total") > 0
    assert value("infernode_cgroup_memory_max_bytes") == MEM_LIMIT
    assert value("infernode_cgroup_memory_events_total", event="oom_kill") >= 1
    writes = [v for (name, labels), v in got.items()
              if name == "infernode_cgroup_io_bytes_total" and dict(labels)["cgroup"] == unit_cg
              and dict(labels)["direction"] == "write"]
    assert max(writes, default=0) >= 4 << 20
    psi_file = (cgroup.layout.unified or ROOT) / cgroup.slice / UNIT / "cpu.pressure"
    if psi_file.exists():
        assert value("infernode_cgroup_pressure_stall_seconds_total", resource="cpu", scope="some") is not None
    rows = list(c.doctor())
    assert rows[0].status == "ok" and UNIT in rows[0].detail
