"""The agent's own health: build, process, event store, config reloads."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psutil

from agent import __version__
from agent.samples import Sample
from agent.specs import (
    BUILD_INFO,
    CONFIG_LAST_RELOAD_SUCCESS,
    CONFIG_RELOAD_FAILURES_TOTAL,
    EVENTS_ADDED_TOTAL,
    EVENTS_EVICTED_TOTAL,
    EVENTS_STORE_BYTES,
    EVENTS_STORED,
    PROCESS_CPU_SECONDS_TOTAL,
    PROCESS_RESIDENT_MEMORY_BYTES,
    START_TIME_SECONDS,
)

if TYPE_CHECKING:
    from agent.events import EventStore


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


