"""Which threads are "inference": the tids in the configured inference cgroups.

A configured entry is either a cgroup path relative to the hierarchy roots
("inference.slice", looked up in the v2 root, in `unified` and in every v1
controller hierarchy, so v2, hybrid and v1 hosts all work) or an absolute
directory under /sys/fs/cgroup. Each cgroup directory under it (the units of the
slice) becomes one scope, named by its canonical cgroup path (agent/cgroups.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.cgroups import cgroup_of_pid, parse_ids
from agent.paths import Paths


@dataclass
class ScopeTable:
    """tid -> scope id, and scope id -> canonical cgroup path (ids start at 1)."""

    tids: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)

    def id_for(self, name: str) -> int:
        for sid, n in self.names.items():
            if n == name:
                return sid
        sid = len(self.names) + 1
        self.names[sid] = name
        return sid


def hierarchy_roots(paths: Paths) -> list[Path]:
    """The v2 root (pure v2 hosts), `unified` (hybrid) and each v1 controller root."""
    root = paths.cgroup()
    if (root / "cgroup.controllers").exists():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                  and ((p / "cgroup.procs").exists()))


def scope_dirs(paths: Paths, entries: Iterable[str]) -> list[tuple[Path, Path]]:
    """(hierarchy root, configured dir) pairs that exist."""
    out: list[tuple[Path, Path]] = []
    roots = hierarchy_roots(paths)
    cg = paths.cgroup()
    for entry in entries:
        if entry.startswith("/"):
            d = paths.host(entry)
            if not d.is_dir():
                continue
            root = next((r for r in roots if r == d or r in d.parents), cg)
            out.append((root, d))
            continue
        for r in roots:
            d = r / entry.strip("/")
            if d.is_dir():
                out.append((r, d))
    return out


def _thread_file(d: Path) -> Path | None:
    for name in ("cgroup.threads", "tasks"):
        f = d / name
        if f.exists():
            return f
    return None


def read_scopes(paths: Paths, entries: Iterable[str], previous: ScopeTable | None = None) -> ScopeTable:
    """Scan the inference cgroups; scope ids of names seen before are kept stable."""
    table = ScopeTable(names=dict(previous.names) if previous else {})
    for root, top in scope_dirs(paths, entries):
        for d in [top, *sorted(p for p in top.rglob("*") if p.is_dir())]:
            f = _thread_file(d)
            if f is None:
                continue
            try:
                tids = parse_ids(f.read_text())
            except (FileNotFoundError, ProcessLookupError):
                continue  # the unit went away while we scanned
            if not tids:
                continue
            name = cgroup_of_pid(paths, tids[0]) or ("/" + str(d.relative_to(root))).rstrip("/") or "/"
            sid = table.id_for(name)
            for t in tids:
                table.tids.setdefault(t, sid)
    return table
