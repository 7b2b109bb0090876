"""Which worker a span came from, and what that worker runs on.

Decision (documented in docs/tracing.md): the worker is found, in order,
  1. from the span's resource `vllm.process_id`: the pid's canonical cgroup
     (agent.cgroups) names a systemd unit; a configured worker whose name is the
     unit's instance or stem (`infernode-worker@NAME.service`, `NAME.service`)
     owns it;
  2. from the resource `service.name`: the drop-in sets OTEL_SERVICE_NAME=vllm-NAME
     and vLLM passes it through unchanged (vllm/tracing/otel.py Resource.create);
     NAME itself is accepted too (a worker started by hand);
  3. when the pid is absent or gone and exactly one worker is configured, that one;
  4. else the span's `service.name` (or "unknown") stands for an unmanaged worker.
The cgroup and its thread ids are cached for a few seconds: one /proc read per span would
cost more than the rest of the enrichment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.cgroups import cgroup_of_pid, parse_ids, unit_of_cgroup
from agent.hostfs import read_if_readable
from agent.paths import Paths
from agent.services import Services
from agent.tracing.ranking import RequestScope
from agent.tracing.sockets import listening_ports
from agent.tracing.spans import RequestSpan
from agent.worker.dropin import service_name
from agent.worker.settings import WorkerSettings, max_num_seqs_of


def worker_of_unit(unit: str, names: Sequence[str]) -> str | None:
    stem = unit.rsplit(".", 1)[0] if unit.endswith((".service", ".scope")) else unit
    instance = stem.split("@", 1)[1] if "@" in stem else None
    for name in names:
        if name in (instance, stem) or stem.endswith("-" + name):
            return name
    return None


def _named(managed: str | None, service: str) -> str:
    return managed or service or "unknown"


class ScopeResolver:
    def __init__(self, paths: Paths, workers: Sequence[WorkerSettings], services: Services | None = None,
                 ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = paths
        self._scope_cache: dict[tuple[int | None, str], tuple[float, RequestScope]] = {}
        self.workers = {w.name: w for w in workers}
        self.services = services if services is not None else Services()
        self.ttl_s = ttl_s
        self.clock = clock
        self._pid_cache: dict[int, tuple[float, str | None]] = {}
        self._pids_cache: dict[str, tuple[float, frozenset[int]]] = {}
        self._topo_cache: tuple[float, Any] | None = None

    @property
    def workers(self) -> dict[str, Any]:
        return self._workers

    @workers.setter
    def workers(self, workers: dict[str, Any]) -> None:
        """A reload's workers: scopes built from the old ones are dropped."""
        self._workers = workers
        self._scope_cache.clear()

    def _cgroup(self, pid: int) -> str | None:
        now = self.clock()
        hit = self._pid_cache.get(pid)
        if hit and now - hit[0] < self.ttl_s:
            return hit[1]
        cg = cgroup_of_pid(self.paths, pid)
        if len(self._pid_cache) > 4096:
            self._pid_cache.clear()
        self._pid_cache[pid] = (now, cg)
        return cg

    def _pids(self, cgroup: str) -> frozenset[int]:
        now = self.clock()
        hit = self._pids_cache.get(cgroup)
        if hit and now - hit[0] < self.ttl_s:
            return hit[1]
        pids: frozenset[int] = frozenset()
        # Thread ids, not only process ids: eBPF names the issuing thread of an I/O.
        # Hybrid and v1 hosts keep the same path under each controller; v2 under the root.
        for base in (self.paths.cgroup(), self.paths.cgroup("unified"), self.paths.cgroup("systemd"),
                     self.paths.cgroup("cpu")):
            d = base / cgroup.lstrip("/")
            for name in ("cgroup.threads", "tasks", "cgroup.procs"):
                try:
                    pids = frozenset(parse_ids((d / name).read_text()))
                except OSError:
                    continue
                if pids:
                    break
            if pids:
                break
        if len(self._pids_cache) > 256:
            self._pids_cache.clear()
        self._pids_cache[cgroup] = (now, pids)
        return pids

    def _topology(self) -> tuple[dict[int, str], dict[int, list[str]]] | None:
        """({gpu index: uuid}, {gpu index: [NICs on its NUMA node]}) from the GPU collector's
        topology service, asked at most once a minute (it may go to NVML)."""
        now = self.clock()
        if self._topo_cache is not None and now - self._topo_cache[0] < 60.0:
            return self._topo_cache[1]
        fn = self.services.gpu_topology
        result = None
        if fn is not None:
            try:
                topo = fn()
                uuids = {g.index: g.uuid for g in topo.gpus if g.uuid}
                nics: dict[int, list[str]] = {}
                for n in topo.nics:
                    if n.numa_node is not None:
                        nics.setdefault(n.numa_node, []).append(n.name)
                numa = {g.index: g.numa_node for g in topo.gpus if g.numa_node is not None}
                result = (uuids, {i: nics.get(node, []) for i, node in numa.items()})
            except Exception:  # noqa: BLE001 - no topology means "any GPU", not a failed span
                result = None
        self._topo_cache = (now, result)
        return result

    def gpu_uuids(self, indices: Sequence[int]) -> tuple[str, ...] | None:
        """UUIDs of the worker's GPUs from the GPU topology; None (any GPU) when
        the topology is unknown or does not name one of them."""
        topo = self._topology()
        if not indices or topo is None:
            return None
        out = []
        for i in indices:
            uuid = topo[0].get(i)
            if not uuid:
                return None
            out.append(uuid)
        return tuple(out)

    def nics(self, indices: Sequence[int]) -> tuple[str, ...]:
        """NICs on the NUMA nodes of the worker's GPUs (where its traffic should go)."""
        topo = self._topology()
        if topo is None:
            return ()
        return tuple(sorted({n for i in indices for n in topo[1].get(i, [])}))

    def scope(self, r: RequestSpan) -> RequestScope:
        """The request's scope; the same for every span of one process for `ttl_s`
        (what it is built from is cached that long anyway), so it is built once."""
        key = (r.pid, r.service_name)
        now = self.clock()
        hit = self._scope_cache.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        scope = self._build_scope(r)
        if len(self._scope_cache) > 4096:
            self._scope_cache.clear()
        self._scope_cache[key] = (now, scope)
        return scope

    def _worker_of_service(self, service: str) -> str | None:
        if service in self.workers:
            return service
        return next((n for n in self.workers if service_name(n) == service), None)

    def managed_worker(self, pid: int | None, service: str) -> str | None:
        """The configured worker a process belongs to (rules 1-3 above), or None."""
        return self._resolve(pid, service)[0]

    def worker_name(self, pid: int | None, service: str) -> str:
        """The worker a span's sender is named as (rules 1-4 above), uncached: for a
        span whose scope is not built (one that does not parse)."""
        return _named(self.managed_worker(pid, service), service)

    def _resolve(self, pid: int | None, service: str) -> tuple[str | None, str | None]:
        """(configured worker or None, canonical cgroup of the pid or None)."""
        cgroup = self._cgroup(pid) if pid is not None else None
        names = list(self.workers)
        name = worker_of_unit(unit_of_cgroup(cgroup), names) if cgroup else None
        if name is None:
            name = self._worker_of_service(service)
        if name is None and cgroup is None and len(names) == 1:
            name = names[0]
        return name, cgroup

    def _build_scope(self, r: RequestSpan) -> RequestScope:
        name, cgroup = self._resolve(r.pid, r.service_name)
        worker = self.workers.get(name) if name else None
        pids = self._pids(cgroup) if cgroup and cgroup != "/" else frozenset()
        if r.pid is not None:
            pids = pids | {r.pid}
        return RequestScope(
            worker=_named(name, r.service_name),
            cgroup=cgroup if cgroup and cgroup != "/" else None,
            gpus=self.gpu_uuids(worker.gpus) if worker is not None else None,
            nics=self.nics(worker.gpus) if worker is not None else (),
            pids=pids,
            port=worker.port if worker is not None else None,
            # A worker started outside the supervisor: its ports from its own sockets.
            listen_ports=listening_ports(self.paths, r.pid) if worker is None and r.pid is not None else frozenset(),
            batch_limit=worker.max_num_seqs if worker is not None else self._cmdline_batch_limit(r.pid),
        )

    def _cmdline_batch_limit(self, pid: int | None) -> int | None:
        """A worker started outside the supervisor: --max-num-seqs from its process's
        command line (vllm.process_id is the API server's pid, whose argv holds the
        engine flags unless they came from a --config file)."""
        if pid is None:
            return None
        text = read_if_readable(self.paths.proc(pid, "cmdline"))
        return max_num_seqs_of(text.split("\0")) if text else None
