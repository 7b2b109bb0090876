"""The agent's own health: build, process, event store, config reloads."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psutil

from agent import __version__
from agent.catalog import MetricSpec, MetricType
from agent.samples import Sample

if TYPE_CHECKING:
    from agent.events import EventStore

SELF_SPECS = (
    MetricSpec("infernode_build_info", MetricType.GAUGE, "Agent version; constant 1.",
               unit="info", labels=("version",), source="agent"),
    MetricSpec("infernode_start_time_seconds", MetricType.GAUGE, "When the agent process started, Unix time.",
               unit="seconds", source="agent"),
    MetricSpec("infernode_process_resident_memory_bytes", MetricType.GAUGE, "Resident memory of the agent process.",
               unit="bytes", source="/proc/self/statm via psutil"),
    MetricSpec("infernode_process_cpu_seconds_total", MetricType.COUNTER, "CPU time the agent process used, user plus system.",
               unit="seconds", source="/proc/self/stat via psutil"),
    MetricSpec("infernode_config_reload_failures_total", MetricType.COUNTER,
               "Config reloads (SIGHUP) that failed: the new config was invalid (the old one kept running), or "
               "a subsystem it turns on did not start (the rest of it was applied).",
               source="agent"),
    MetricSpec("infernode_config_last_reload_success", MetricType.GAUGE,
               "Whether the last config reload was applied in full (1) or failed (0).", source="agent"),
    MetricSpec("infernode_events_stored", MetricType.GAUGE, "Events currently held in the event store.",
               source="agent event store"),
    MetricSpec("infernode_events_store_bytes", MetricType.GAUGE,
               "Estimated memory held by the event store (bounded by events.max_bytes).",
               unit="bytes", source="agent event store"),
    MetricSpec("infernode_events_evicted_total", MetricType.COUNTER,
               "Events evicted from the store, oldest first, to stay within its memory bound.",
               source="agent event store"),
    MetricSpec("infernode_events_added_total", MetricType.COUNTER, "Events added to the store, by kind.",
               labels=("kind",), source="agent event store"),
)


class SelfMetrics:
    def __init__(self, events: EventStore) -> None:
        self.events = events
        self.reload_failures = 0
        self.last_reload_ok = True
        self._proc = psutil.Process(os.getpid())
        self._start = self._proc.create_time()

    def samples(self) -> Iterable[Sample]:
        cpu = self._proc.cpu_times()
        yield Sample("infernode_build_info", {"version": __version__}, 1.0)
        yield Sample("infernode_start_time_seconds", {}, self._start)
        yield Sample("infernode_process_resident_memory_bytes", {}, float(self._proc.memory_info().rss))
        yield Sample("infernode_process_cpu_seconds_total", {}, cpu.user + cpu.system)
        yield Sample("infernode_config_reload_failures_total", {}, float(self.reload_failures))
        yield Sample("infernode_config_last_reload_success", {}, 1.0 if self.last_reload_ok else 0.0)
        yield Sample("infernode_events_stored", {}, float(len(self.events)))
        yield Sample("infernode_events_store_bytes", {}, float(self.events.size_bytes))
        yield Sample("infernode_events_evicted_total", {}, float(self.events.evicted_total))
        for kind, n in sorted(self.events.added_total.items()):
            yield Sample("infernode_events_added_total", {"kind": kind}, float(n))




