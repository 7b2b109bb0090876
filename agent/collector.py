"""The Collector protocol: the one extension point for telemetry sources.

A collector has a name, says whether it is on by default, declares its metrics
(`specs`) and its config section (`settings_model`), and yields samples from
`collect()`. It raises NoDataError when its source does not exist on this host
(no GPU, no PSI): that is "nothing to report here", not a failure.

The runtime owns everything else: timeouts, exception isolation, and the
infernode_collector_up / _duration_seconds series. A collector whose source is slow
(NVML, eBPF maps) polls in a thread started by `start()` and serves `collect()` from
a cache with a max age, so a scrape never waits on the source.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from agent.absent import Absent
from agent.catalog import MetricSpec, PassthroughSpec
from agent.config_types import Duration
from agent.doctor_row import DoctorRow
from agent.events import EventStore
from agent.paths import Paths
from agent.samples import Sample
from agent.services import Services


class NoDataError(Absent):
    """The source this collector reads does not exist on this host."""

    def __init__(self, reason: str, fix: str = "", samples: Iterable[Sample] = ()) -> None:
        super().__init__(reason, fix)
        # What a collector still says while it has no data (e.g. infernode_gpu_nvml_up 0).
        self.samples = list(samples)


class CollectorSettings(BaseModel):
    """Settings every collector accepts; collectors subclass this for their own keys."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None  # None: the collector's default_enabled
    timeout: Duration | None = None  # None: server.collector_timeout


@dataclass
class CollectorContext:
    paths: Paths
    events: EventStore
    settings: CollectorSettings
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("infernode"))
    # What the collector offers other parts of the agent (agent/services.py); the
    # runtime withdraws it when the collector stops.
    services: Services = field(default_factory=Services)


class Collector(ABC):
    name: ClassVar[str]
    default_enabled: ClassVar[bool] = True
    specs: ClassVar[tuple[MetricSpec | PassthroughSpec, ...]] = ()
    settings_model: ClassVar[type[CollectorSettings]] = CollectorSettings

    def __init__(self, ctx: CollectorContext) -> None:
        self.ctx = ctx

    @property
    def paths(self) -> Paths:
        return self.ctx.paths

    def start(self) -> None:
        """Start background work (pollers, event threads). Must not block."""

    def stop(self) -> None:
        """Stop background work; called on shutdown and before a reload replaces it."""

    @abstractmethod
    def collect(self) -> Iterable[Sample]:
        """Yield this collection's samples, or raise NoDataError."""

    def doctor(self) -> Iterable[DoctorRow]:
        """Extra rows for `infernode doctor` beyond the runtime's up/down row."""
        return ()
