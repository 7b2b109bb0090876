"""Can a program run here? Privileges, bcc, kernel headers, tracepoints.

Each check returns a reason and a fix, so a program that is off says why in one log
line, in `infernode doctor` and in `infernode ebpf status`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from agent.absent import Absent
from agent.paths import Paths
from collectors.ebpf.programs import Program

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


@dataclass(frozen=True)
class Verdict:
    """A program can run (`absent` None), or the Absent that says why not."""

    absent: Absent | None = None

    @property
    def ok(self) -> bool:
        return self.absent is None

    @property
    def reason(self) -> str:
        return self.absent.reason if self.absent else ""

    @property
    def fix(self) -> str:
        return self.absent.fix if self.absent else ""


OK = Verdict()


def _no(reason: str, fix: str) -> Verdict:
    return Verdict(Absent(reason, fix))


def parse_cap_eff(status_text: str) -> int:
    """CapEff bit mask from /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise ValueError("no CapEff line in status")


def has_bpf_caps(cap_eff: int) -> bool:
    """CAP_BPF + CAP_PERFMON (kernel >= 5.8), or CAP_SYS_ADMIN which implies both."""
    def has(bit: int) -> bool:
        return bool(cap_eff >> bit & 1)

    return has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))


def check_privileges(paths: Paths) -> Verdict:
    try:
        caps = parse_cap_eff(paths.proc("self", "status").read_text())
    except (OSError, ValueError) as e:
        return _no(f"cannot read capabilities: {e}", "run the agent as root")
    if has_bpf_caps(caps):
        return OK
    who = "not root" if os.geteuid() != 0 else "root without the capabilities"
    return _no(f"{who}: needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)",
                   "run infernode as root, or grant AmbientCapabilities=CAP_BPF CAP_PERFMON in its unit")


def check_bcc() -> Verdict:
    if importlib.util.find_spec("bcc") is None:
        return _no("the bcc Python module is not importable",
                       "apt-get install python3-bpfcc bpfcc-tools and create the venv with --system-site-packages "
                       "(never the PyPI package 'bcc')")
    return OK


def check_headers(paths: Paths) -> Verdict:
    release = os.uname().release
    build = paths.host(f"/lib/modules/{release}/build")
    if build.exists() or paths.sys("kernel", "kheaders.tar.xz").exists():
        return OK
    return _no(f"no kernel headers for {release} ({build} missing, no /sys/kernel/kheaders.tar.xz)",
                   f"apt-get install linux-headers-{release} (custom kernels: see docs/ebpf.md)")


def tracefs_events(paths: Paths) -> Path | None:
    for d in (paths.sys("kernel", "tracing", "events"), paths.sys("kernel", "debug", "tracing", "events")):
        if d.is_dir():
            return d
    return None


def has_tracepoint(events: Path, tracepoint: str) -> bool:
    """Whether tracefs's events directory has "category:name"."""
    return (events / tracepoint.replace(":", "/") / "format").exists()


def check_tracepoints(paths: Paths, program: Program) -> Verdict:
    events = tracefs_events(paths)
    if events is None:
        return _no("tracefs is not mounted",
                   "mount -t tracefs tracefs /sys/kernel/tracing; in a network namespace, enter it with "
                   "`nsenter --net=/run/netns/NAME` (`ip netns exec` remounts /sys without tracefs)")
    missing = [tp for tp in program.tracepoints if not has_tracepoint(events, tp)]
    if missing:
        return _no(f"tracepoint {', '.join(missing)} missing in this kernel",
                       "this kernel lacks the tracepoint; disable the program or use a kernel that has it")
    return OK


def probe(paths: Paths, programs: list[Program]) -> dict[str, Verdict]:
    """Verdict per program; shared checks first, then each program's tracepoints."""
    for shared in (check_privileges(paths), check_bcc(), check_headers(paths)):
        if not shared.ok:
            return {p.name: shared for p in programs}
    return {p.name: check_tracepoints(paths, p) for p in programs}
