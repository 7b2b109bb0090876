"""Pressure stall information (PSI) for cpu, memory and io from /proc/pressure."""

from __future__ import annotations

from collections.abc import Iterable

from agent.catalog import MetricSpec, MetricType
from agent.collector import Collector, NoDataError
from agent.hostfs import read_text
from agent.samples import Sample

RESOURCES = ("cpu", "memory", "io")

HOST_PRESSURE_STALL_SECONDS_TOTAL = MetricSpec(
    "infernode_host_pressure_stall_seconds_total",
    MetricType.COUNTER,
    "Time in which some (at least one) or all (full) non-idle tasks were stalled on the resource.",
    unit="seconds",
    labels=("resource", "scope"),
    source="/proc/pressure/{cpu,memory,io} total= (microseconds)",
)
SPECS = (
    HOST_PRESSURE_STALL_SECONDS_TOTAL,
)


def parse_pressure(text: str, what: str = "pressure file") -> dict[str, float]:
    """{"some": seconds, "full": seconds} from a PSI file.

    Only the cumulative total= field is used: it is in microseconds, and its rate
    gives the stall share over any window, where avg10/60/300 are fixed windows a
    scraper cannot combine. System-wide cpu "full" is printed as zeros by kernels
    since 5.13 and absent before; either way it is passed through as read.
    """
    out: dict[str, float] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        scope = fields[0]
        if scope not in ("some", "full"):
            raise ValueError(f"{what} line {lineno}: expected 'some' or 'full', got {line[:60]!r}")
        total = None
        for f in fields[1:]:
            if f.startswith("total="):
                total = f[6:]
        if total is None or not total.isdigit():
            raise ValueError(f"{what} line {lineno}: no numeric total= field in {line[:60]!r}")
        out[scope] = int(total) / 1e6
    if "some" not in out:
        raise ValueError(f"{what}: no 'some' line")
    return out


class PressureCollector(Collector):
    name = "pressure"
    specs = SPECS

    def collect(self) -> Iterable[Sample]:
        base = self.paths.proc("pressure")
        if not base.is_dir():
            raise NoDataError(f"{base} does not exist (kernel without PSI)",
                              "boot with psi=1 (CONFIG_PSI) for pressure metrics")
        for resource in RESOURCES:
            path = base / resource
            try:
                text = read_text(path)
            except FileNotFoundError:
                continue
            except OSError as e:
                # CONFIG_PSI_DEFAULT_DISABLED kernels keep the files but refuse reads
                # (EOPNOTSUPP) until booted with psi=1.
                raise NoDataError(f"{path}: {e.strerror or e}", "boot with psi=1 to enable PSI") from None
            for scope, seconds in parse_pressure(text, str(path)).items():
                yield HOST_PRESSURE_STALL_SECONDS_TOTAL.emit({"resource": resource, "scope": scope}, seconds)
