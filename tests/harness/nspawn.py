"""A real systemd for tests: a throwaway overlay of the cached Debian root, booted
with systemd-nspawn, reached with nsenter.

    with booted(binds_ro={"/work/repo": "/opt/infernode/src"}, prefix="worker") as c:
        c.run("systemctl", "start", "foo.service")
        print(c.run("systemctl", "show", "-p", "ActiveState", "foo.service").stdout)

The host's PID 1 is not systemd, so there is no machined: nspawn runs with
--register=no --keep-unit and is found and stopped by pid. SIGTERM to nspawn
makes it ask the container's systemd for an orderly poweroff.

Network: by default the container gets its own network namespace with only
loopback (--private-network), so servers inside never collide with the host's
ports; pass network_namespace="/run/netns/NAME" to put it in a prepared
namespace instead (the SSH hosts of the Ansible tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.harness.rootfs import base_rootfs, overlay_root

ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


class BootError(RuntimeError):
    pass


@dataclass
class Container:
    name: str
    root: Path
    nspawn: subprocess.Popen[bytes]
    leader: int
    console: Path

    def run(self, *cmd: str, check: bool = True, timeout: float = 60, input: str | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside every namespace of the container (as its root)."""
        full = ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i",
                *(f"{k}={v}" for k, v in {**ENV, **(env or {})}.items()), *cmd]
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input)
        if check and res.returncode != 0:
            raise subprocess.CalledProcessError(res.returncode, cmd, res.stdout, res.stderr)
        return res

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script, **kw)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", *(f"--property={p}" for p in props), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
        """Poll predicate() until it returns something truthy; its value is returned."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"{what} not reached within {timeout:g}s (last: {last!r})")

    def journal(self, unit: str | None = None, lines: int = 80, after: str | None = None) -> str:
        """The journal's last `lines` lines (of `unit`), only those after the cursor
        `after` (from `cursor()`) when given."""
        args = ["journalctl", "--no-pager", "-n", str(lines)] + (["-u", unit] if unit else [])
        if after is not None:
            args.append(f"--after-cursor={after}")
        return self.run(*args, check=False).stdout

    def cursor(self) -> str:
        """Where the journal ends now, for `journal(after=...)`: what a test reads
        from there on was written during that test, not by an earlier one."""
        out = self.run("journalctl", "--no-pager", "-n", "0", "--show-cursor", check=False).stdout
        return out.strip().rsplit("-- cursor: ", 1)[-1]


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                out.extend(map(int, kids))
                todo.extend(map(int, kids))
        except OSError:
            continue
    return out


def _container_init(nspawn_pid: int) -> int | None:
    """The container's PID 1 (systemd), seen from the host."""
    for pid in _descendants(nspawn_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                return pid
    return None


@contextlib.contextmanager
def booted(
    prefix: str = "test",
    binds_ro: Mapping[str, str] | None = None,
    binds: Mapping[str, str] | None = None,
    network_namespace: str | None = None,
    boot_timeout: float = 90,
    setup=None,
) -> Iterator[Container]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with overlay_root(base_rootfs()) as root:
        if setup is not None:
            setup(root)
        console = root.parent / "console.log"
        cmd = ["systemd-nspawn", "-D", str(root), "-b", "--register=no", "--keep-unit",
               "--console=read-only", f"--machine={name}"]
        cmd += [f"--network-namespace-path={network_namespace}"] if network_namespace else ["--private-network"]
        for src, dst in (binds_ro or {}).items():
            cmd.append(f"--bind-ro={src}:{dst}")
        for src, dst in (binds or {}).items():
            cmd.append(f"--bind={src}:{dst}")
        with open(console, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + boot_timeout
            leader = None
            while leader is None:
                if proc.poll() is not None:
                    raise BootError(f"systemd-nspawn exited {proc.returncode}: {console.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise BootError(f"container {name} did not start within {boot_timeout:g}s")
                leader = _container_init(proc.pid)
                time.sleep(0.1)
            c = Container(name, root, proc, leader, console)
            state = ""
            # Until the container's systemd has set up /run/systemd and its bus, systemctl
            # answers nothing or "offline".
            while state in ("", "offline") and time.monotonic() < deadline:
                remaining = max(1.0, deadline - time.monotonic())
                state = c.run("systemctl", "is-system-running", "--wait", check=False,
                              timeout=remaining).stdout.strip()
                if state in ("", "offline"):
                    time.sleep(0.2)
            if state not in ("running", "degraded"):
                raise BootError(f"container {name} is {state!r}: {c.run('systemctl', '--failed', check=False).stdout}")
            yield c
        finally:
            _shutdown(proc)


def _shutdown(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
