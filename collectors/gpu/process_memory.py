"""GPU memory of compute processes, attributed to the systemd unit (or cgroup)
each process runs in: labels are units, never pids, so cardinality stays bounded
by the units on the node."""

from __future__ import annotations

from agent.cgroups import cgroup_of_pid, unit_of_cgroup
from agent.paths import Paths

# A pid NVML lists but /proc does not (it just exited, or the agent cannot see
# its pid namespace): its memory is still in use, so it is counted, under this.
UNKNOWN_UNIT = "unknown"


class UnitResolver:
    """pid -> unit, cached while the pid stays on some GPU (a pid's cgroup rarely
    changes, and /proc reads on every pass would dominate the poll); the caller
    forgets pids that left every GPU once per pass."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._cache: dict[int, str] = {}

    def unit_of(self, pid: int) -> str:
        unit = self._cache.get(pid)
        if unit is None:
            cg = cgroup_of_pid(self.paths, pid)
            unit = self._cache[pid] = UNKNOWN_UNIT if cg is None else unit_of_cgroup(cg)
        return unit

    def forget_except(self, live: set[int]) -> None:
        for pid in [p for p in self._cache if p not in live]:
            del self._cache[pid]


def memory_by_unit(resolver: UnitResolver, procs: list[tuple[int, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pid, used in procs:
        unit = resolver.unit_of(pid)
        out[unit] = out.get(unit, 0) + int(used)
    return out
