"""Cgroup paths of processes, the same on v2, hybrid and v1 hosts.

The canonical path of a process is the one a person would name: its unified (v2)
path when that is not the root, else its systemd (name=systemd) path, else its v1
cpu controller path. Events about threads use "cgroup:<canonical path>" as their
subject, and the correlation resolves a worker's pid to the same string.
"""

from __future__ import annotations

from agent.paths import Paths


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """{"": v2 path, "name=systemd": ..., "cpu": ..., ...} from /proc/<pid>/cgroup."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out[""] = path
            continue
        for c in controllers.split(","):
            out[c] = path
    return out


def canonical_cgroup(entries: dict[str, str]) -> str:
    for key in ("", "name=systemd", "cpu", "memory"):
        path = entries.get(key)
        if path and path != "/":
            return path
    return "/"


def cgroup_of_pid(paths: Paths, pid: int) -> str | None:
    """Canonical cgroup path of `pid`, or None when it has exited."""
    try:
        text = paths.proc(pid, "cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return canonical_cgroup(parse_proc_cgroup(text))


def parse_tgid(status_text: str) -> int | None:
    """The thread group (process) id in /proc/<tid>/status, or None."""
    for line in status_text.splitlines():
        if line.startswith("Tgid:"):
            value = line[5:].strip()
            return int(value) if value.isdigit() else None
    return None


def process_of_thread(paths: Paths, tid: int) -> tuple[int, str] | None:
    """(process id, its command) of a thread, from procfs (a thread's own
    /proc/<tid> exists though it is not listed), or None when it has exited."""
    try:
        tgid = parse_tgid(paths.proc(tid, "status").read_text())
        if tgid is None:
            return None
        return tgid, paths.proc(tgid, "comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def unit_of_cgroup(path: str) -> str:
    """The systemd unit a cgroup path belongs to: its last *.service/*.scope
    component, else its last *.slice, else the path itself."""
    parts = [p for p in path.split("/") if p]
    for p in reversed(parts):
        if p.endswith((".service", ".scope")):
            return p
    for p in reversed(parts):
        if p.endswith(".slice"):
            return p
    return path or "/"


def parse_ids(text: str) -> list[int]:
    """Thread or process ids from cgroup.threads, cgroup.procs (v2) or tasks (v1)."""
    return [int(x) for x in text.split() if x.isdigit()]
