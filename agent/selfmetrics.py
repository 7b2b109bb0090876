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

BUILD_INFO = MetricSpec(
    "infernode_build_info", MetricType.GAUGE, "Agent version; constant 1.",
    unit="info", labels=("version",), source="agent"
)
START_TIME_SECONDS = MetricSpec(
    "infernode_start_time_seconds", MetricType.GAUGE, "When the agent process started, Unix time.",
    unit="seconds", source="agent"
)
PROCESS_RESIDENT_MEMORY_BYTES = MetricSpec(
    "infernode_process_resident_memory_bytes", MetricType.GAUGE, "Resident memory of the agent process.",
    unit="bytes", source="/proc/self/statm via psutil"
)
PROCESS_CPU_SECONDS_TOTAL = MetricSpec(
    "infernode_process_cpu_seconds_total", MetricType.COUNTER, "CPU time the agent process used, user plus system.",
    unit="seconds", source="/proc/self/stat via psutil"
)
CONFIG_RELOAD_FAILURES_TOTAL = MetricSpec(
    "infernode_config_reload_failures_total", MetricType.COUNTER,
    "Config reloads (SIGHUP) that failed: the new config was invalid (the old one kept running), or "
    "a subsystem it turns on did not start (the rest of it was applied).",
    source="agent"
)
CONFIG_LAST_RELOAD_SUCCESS = MetricSpec(
    "infernode_config_last_reload_success", MetricType.GAUGE,
    "Whether the last config reload was applied in full (1) or failed (0).", source="agent"
)
EVENTS_STORED = MetricSpec(
    "infernode_events_stored", MetricType.GAUGE, "Events currently held in the event store.",
    source="agent event store"
)
EVENTS_STORE_BYTES = MetricSpec(
    "infernode_events_store_bytes", MetricType.GAUGE,
    "Estimated memory held by the event store (bounded by events.max_bytes).",
    unit="bytes", source="agent event store"
)
EVENTS_EVICTED_TOTAL = MetricSpec(
    "infernode_events_evicted_total", MetricType.COUNTER,
    "Events evicted from the store, oldest first, to stay within its memory bound.",
    source="agent event store"
)
EVENTS_ADDED_TOTAL = MetricSpec(
    "infernode_events_added_total", MetricType.COUNTER, "Events added to the store, by kind.",
    labels=("kind",), source="agent event store"
)
SELF_SPECS = (
    BUILD_INFO,
    START_TIME_SECONDS,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_CPU_SECONDS_TOTAL,
    CONFIG_RELOAD_FAILURES_TOTAL,
    CONFIG_LAST_RELOAD_SUCCESS,
    EVENTS_STORED,
    EVENTS_STORE_BYTES,
    EVENTS_EVICTED_TOTAL,
    EVENTS_ADDED_TOTAL,
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
        yield BUILD_INFO.emit({"version": __version__}, 1.0)
        yield START_TIME_SECONDS.emit({}, self._start)
        yield PROCESS_RESIDENT_MEMORY_BYTES.emit({}, float(self._proc.memory_info().rss))
        yield PROCESS_CPU_SECONDS_TOTAL.emit({}, cpu.user + cpu.system)
        yield CONFIG_RELOAD_FAILURES_TOTAL.emit({}, float(self.reload_failures))
        yield CONFIG_LAST_RELOAD_SUCCESS.emit({}, 1.0 if self.last_reload_ok else 0.0)
        yield EVENTS_STORED.emit({}, float(len(self.events)))
        yield EVENTS_STORE_BYTES.emit({}, float(self.events.size_bytes))
        yield EVENTS_EVICTED_TOTAL.emit({}, float(self.events.evicted_total))
        for kind, n in sorted(self.events.added_total.items()):
            yield EVENTS_ADDED_TOTAL.emit({"kind": kind}, float(n))




