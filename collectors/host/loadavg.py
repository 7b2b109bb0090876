"""Load averages from /proc/loadavg."""

from __future__ import annotations

from collections.abc import Iterable

from agent.catalog import MetricSpec, MetricType
from agent.collector import Collector
from agent.samples import Sample
from collectors.files import read_source

HOST_LOAD = MetricSpec(
    "infernode_host_load",
    MetricType.GAUGE,
    "System load average (runnable plus uninterruptible tasks) over the window.",
    labels=("window",),
    source="/proc/loadavg",
)
SPECS = (
    HOST_LOAD,
)


def parse_loadavg(text: str) -> dict[str, float]:
    """{"1m": .., "5m": .., "15m": ..} from /proc/loadavg's first three fields."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"/proc/loadavg: expected at least 3 fields, got {len(fields)}")
    return {"1m": float(fields[0]), "5m": float(fields[1]), "15m": float(fields[2])}


class LoadavgCollector(Collector):
    name = "loadavg"
    specs = SPECS

    def collect(self) -> Iterable[Sample]:
        path = self.paths.proc("loadavg")
        text = read_source(path, "mount procfs at /proc")
        for window, value in parse_loadavg(text).items():
            yield HOST_LOAD.emit({"window": window}, value)
