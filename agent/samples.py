"""Values a collector yields: plain samples and histograms, with optional exemplars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Exemplar:
    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class HistogramValue:
    """Cumulative buckets as (upper bound, count); the last bound is +Inf."""

    buckets: Sequence[tuple[float, float]]
    sum: float
    exemplars: Mapping[float, Exemplar] = field(default_factory=dict)

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float | HistogramValue
    exemplar: Exemplar | None = None
