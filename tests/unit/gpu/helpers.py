"""Builds a GPU collector over the NVML test double and a fixture root."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.collector import CollectorContext
from agent.events import EventStore
from agent.paths import Paths
from agent.samples import Sample
from collectors.gpu.collector import GpuCollector, GpuSettings
from tests.doubles.fake_pynvml import FakePynvml

FIXTURE_ROOT = Path(__file__).resolve().parents[2] / "fixtures" / "gpu" / "node"


def make_collector(scenario: str | FakePynvml, root: Path = FIXTURE_ROOT, **settings: Any) -> tuple[GpuCollector, FakePynvml, EventStore]:
    fake = scenario if isinstance(scenario, FakePynvml) else FakePynvml.load(scenario)
    # The poll thread makes its first pass at start, then (with this interval)
    # waits: tests drive further passes with refresh(), deterministically.
    opts = {"poll_interval": 3600, "slow_poll_interval": 3600, "max_age": 3600, "event_wait_timeout": 0.05,
            **settings}
    store = EventStore()
    ctx = CollectorContext(paths=Paths(root), events=store, settings=GpuSettings(**opts),
                           log=logging.getLogger("test.gpu"))
    return GpuCollector(ctx, nvml=fake), fake, store


@contextmanager
def running(scenario: str | FakePynvml, root: Path = FIXTURE_ROOT,
            **settings: Any) -> Iterator[tuple[GpuCollector, FakePynvml, EventStore]]:
    """A started collector that has made its first poll; stopped on the way out."""
    c, fake, store = make_collector(scenario, root, **settings)
    c.start()
    try:
        assert c.wait_first_poll(5)
        yield c, fake, store
    finally:
        c.stop()


def scrape_once(scenario: str | FakePynvml, root: Path = FIXTURE_ROOT, **settings: Any) -> list[Sample]:
    """What a scrape serves after the collector's first poll."""
    with running(scenario, root, **settings) as (c, _, _):
        return list(c.collect())
