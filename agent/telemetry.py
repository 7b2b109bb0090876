"""Telemetry: the agent's collecting parts assembled from a config: catalog, event
store, collectors and their runtime. Shared by the daemon, `infernode metrics` and
`infernode doctor`, so each sees exactly what the daemon would."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent.catalog import Catalog
from agent.collector import Collector, CollectorContext
from agent.config import Config
from agent.events import EventStore
from agent.paths import Paths
from agent.plugins import COLLECTORS, build_catalog
from agent.runtime import CollectorRuntime
from agent.selfmetrics import SelfMetrics
from agent.services import Services

log = logging.getLogger("infernode")


def enabled_collectors(config: Config) -> list[type[Collector]]:
    out = []
    for cls in COLLECTORS:
        settings = config.collectors.of(cls)
        on = cls.default_enabled if settings.enabled is None else settings.enabled
        if on:
            out.append(cls)
    return out


@dataclass
class Telemetry:
    config: Config
    paths: Paths
    catalog: Catalog
    events: EventStore
    selfmetrics: SelfMetrics
    runtime: CollectorRuntime
    services: Services = field(default_factory=Services)

    @classmethod
    def build(
        cls,
        config: Config,
        paths: Paths,
        events: EventStore | None = None,
        services: Services | None = None,
    ) -> Telemetry:
        catalog = build_catalog()
        events = events or EventStore(config.events.max_bytes)
        services = services if services is not None else Services()
        selfm = SelfMetrics(events)
        collectors: list[Collector] = []
        timeouts: dict[str, float] = {}
        for ccls in enabled_collectors(config):
            settings = config.collectors.of(ccls)
            ctx = CollectorContext(
                paths=paths, events=events, settings=settings,
                log=logging.getLogger(f"infernode.collector.{ccls.name}"), services=services,
            )
            collectors.append(ccls(ctx))
            timeouts[ccls.name] = settings.timeout or config.server.collector_timeout
        runtime = CollectorRuntime(
            collectors, catalog, timeouts, default_timeout=config.server.collector_timeout,
            extra=[selfm.samples],
        )
        return cls(config, paths, catalog, events, selfm, runtime, services)
