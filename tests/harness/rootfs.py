"""Debian roots made with debootstrap, cached, and handed to tests as throwaway
overlays: real apt/dpkg (chroot) and real systemd (systemd-nspawn -b).

The first call builds the cached root (about a minute and a few hundred MB, from
the Debian mirror this host's apt uses); later calls and later test runs reuse
it. Each test gets an overlayfs on top, so nothing a test does reaches the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("INFERNODE_TEST_CACHE", "/var/cache/infernode-tests"))
SUITE = "bookworm"
MIRROR = os.environ.get("INFERNODE_TEST_MIRROR", "http://deb.debian.org/debian")

# One superset image serves the apt (bootstrap), systemd (worker), SSH (Ansible) and
# GRUB configuration (boot parameters) tests, so the machine builds and stores it once.
DEFAULT_INCLUDE = (
    "systemd", "systemd-sysv", "dbus", "python3", "python3-venv",
    "openssh-server", "iproute2", "ca-certificates", "curl", "grub2-common",
)


def base_rootfs(include: tuple[str, ...] = DEFAULT_INCLUDE) -> Path:
    """Path of the cached root with these packages, built once under a lock."""
    key = hashlib.sha256(" ".join([SUITE, MIRROR, *sorted(include)]).encode()).hexdigest()[:12]
    dest = CACHE / f"rootfs-{SUITE}-{key}"
    if (dest / ".complete").exists():
        return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"rootfs-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / ".complete").exists():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f"rootfs-{key}-", dir=CACHE))
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(include)}", SUITE, str(tmp), MIRROR],
                check=True, capture_output=True, text=True,
            )
            # A booted container must not try to reach the host's network setup.
            (tmp / "etc/hostname").write_text("infernode-test\n")
            if dest.exists():
                shutil.rmtree(dest)
            tmp.rename(dest)
            (dest / ".complete").write_text("ok\n")
        except subprocess.CalledProcessError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"debootstrap failed: {e.stderr[-2000:]}") from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


@contextlib.contextmanager
def overlay_root(base: Path | None = None, workdir: Path | None = None) -> Iterator[Path]:
    """A writable root over the cached one (overlayfs); discarded on exit."""
    base = base or base_rootfs()
    own = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="overlay-", dir=CACHE))
    upper, work, merged = workdir / "upper", workdir / "work", workdir / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={work}", str(merged)],
        check=True, capture_output=True, text=True,
    )
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False, capture_output=True)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def chroot(root: Path, *cmd: str, check: bool = True, env: dict[str, str] | None = None,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command inside `root` with /proc, /sys and /dev available."""
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    full_env.update(env or {})
    return subprocess.run(
        ["unshare", "--mount", "--fork", "--", "sh", "-c",
         'mount -t proc proc "$0/proc" && mount --rbind /sys "$0/sys" && mount --rbind /dev "$0/dev" '
         '&& exec chroot "$0" "$@"', str(root), *cmd],
        check=check, capture_output=True, text=True, env=full_env, input=input,
    )
