"""The metric catalog: every metric is declared once, here or beside its collector.

A declaration is the single source for the exposition (HELP/TYPE, allowed labels),
for docs/metrics.md and for the checks that dashboards and alert rules only name
metrics that exist. Collectors declare their specs as module-level tuples; the
catalog is assembled from the collector registry at run time (nothing registers
itself at import).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from agent.samples import HistogramValue, Sample


class MetricType(str, Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


# Base units only (Prometheus naming guidance); "" for plain counts and enumerations,
# "info" for the constant-1 series that carry identity labels.
UNITS = ("seconds", "bytes", "watts", "joules", "hertz", "celsius", "ratio", "")
_NAME_RE = re.compile(r"^infernode_[a-z][a-z0-9]*(_[a-z0-9]+)+$")
_LABEL_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_UNIT_SUFFIXES = {u: f"_{u}" for u in UNITS if u}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: MetricType
    help: str
    unit: str = ""
    labels: tuple[str, ...] = ()
    source: str = ""
    # Histogram bucket upper bounds, when fixed by the agent (eBPF log2 histograms
    # carry their own bounds and leave this empty).
    buckets: tuple[float, ...] = ()

    @property
    def family(self) -> str:
        """Name without the counter's _total: prometheus_client adds it back."""
        if self.type is MetricType.COUNTER and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        return self.name

    def emit(self, labels: Mapping[str, str], value: float | HistogramValue) -> Sample:
        """One sample of this metric. Collectors emit through their specs, never
        by name, so a renamed metric fails where it is used, at import."""
        return Sample(self.name, labels, value)

    def sample(self, value: float | HistogramValue, **labels: object) -> Sample:
        """emit() with labels as keywords, values stringified."""
        return Sample(self.name, {k: str(v) for k, v in labels.items()}, value)


@dataclass(frozen=True)
class PassthroughSpec:
    """A family prefix the agent re-exposes from another exporter (vLLM's `vllm:*`),
    with the labels it adds. Names inside the prefix are not known in advance."""

    prefix: str
    help: str
    added_labels: tuple[str, ...] = ()
    source: str = ""


class CatalogError(ValueError):
    pass


def spec_named(specs: Iterable[MetricSpec | PassthroughSpec], name: str) -> MetricSpec:
    """The spec declared as `name`. For tables that derive names (a column or a file
    per metric): called at import, so a name that does not match its declaration
    fails there, not at the first scrape."""
    for s in specs:
        if isinstance(s, MetricSpec) and s.name == name:
            return s
    raise CatalogError(f"{name} is not declared")


@dataclass
class Catalog:
    specs: dict[str, MetricSpec] = field(default_factory=dict)
    passthrough: list[PassthroughSpec] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, owner: str, specs: Iterable[MetricSpec | PassthroughSpec]) -> None:
        for spec in specs:
            if isinstance(spec, PassthroughSpec):
                self.passthrough.append(spec)
                continue
            if spec.name in self.specs and self.specs[spec.name] != spec:
                raise CatalogError(
                    f"{spec.name} declared twice with different specs "
                    f"({self.owners[spec.name]} and {owner})"
                )
            self.specs[spec.name] = spec
            self.owners.setdefault(spec.name, owner)

    def get(self, name: str) -> MetricSpec | None:
        return self.specs.get(name)

    def passthrough_for(self, name: str) -> PassthroughSpec | None:
        for p in self.passthrough:
            if name.startswith(p.prefix):
                return p
        return None

    def knows(self, name: str) -> bool:
        """True when `name` (a family, or a series name with _bucket/_sum/_count/_total)
        is declared; used by the dashboard and alert-rule checks."""
        if name in self.specs or self.passthrough_for(name):
            return True
        for suffix in ("_bucket", "_sum", "_count", "_created"):
            base = name[: -len(suffix)] if name.endswith(suffix) else None
            if base and base in self.specs and self.specs[base].type is MetricType.HISTOGRAM:
                return True
        return False


def lint(catalog: Catalog) -> list[str]:
    """Problems with the declarations, as readable lines; empty when clean."""
    problems: list[str] = []
    for name, spec in sorted(catalog.specs.items()):
        where = f"{name} ({catalog.owners.get(name, '?')})"
        if not _NAME_RE.match(name):
            problems.append(f"{where}: name must match infernode_<subsystem>_<name>, snake_case")
        if spec.unit not in UNITS and spec.unit != "info":
            problems.append(f"{where}: unit {spec.unit!r} is not a base unit {UNITS}")
        if spec.type is MetricType.COUNTER and not name.endswith("_total"):
            problems.append(f"{where}: counters end in _total")
        if spec.type is not MetricType.COUNTER and name.endswith("_total"):
            problems.append(f"{where}: only counters end in _total")
        stem = spec.family
        if spec.unit in _UNIT_SUFFIXES and not stem.endswith(_UNIT_SUFFIXES[spec.unit]):
            problems.append(f"{where}: unit {spec.unit} must be the name's suffix")
        if spec.unit == "info" and not name.endswith("_info"):
            problems.append(f"{where}: info metrics end in _info")
        if spec.unit == "info" and spec.type is not MetricType.GAUGE:
            problems.append(f"{where}: info metrics are gauges")
        if not spec.help.strip() or not spec.help.strip()[0].isupper():
            problems.append(f"{where}: help must be a non-empty sentence")
        if not spec.source.strip():
            problems.append(f"{where}: source must say where the value comes from")
        for label in spec.labels:
            if not _LABEL_RE.match(label) or label in ("le", "quantile"):
                problems.append(f"{where}: label {label!r} must be snake_case and not reserved")
        if len(set(spec.labels)) != len(spec.labels):
            problems.append(f"{where}: duplicate labels")
        if spec.type is MetricType.HISTOGRAM and list(spec.buckets) != sorted(spec.buckets):
            problems.append(f"{where}: buckets must be increasing")
    return problems
