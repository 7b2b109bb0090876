"""Percentiles of one round, and the two sides compared over rounds. Pure.

Each round gives one value per metric and percentile (TTFT p99, ...). A side's
figure is the median of its rounds; its spread is the range of its rounds. The
difference is after minus before; its uncertainty is the two half-ranges added in
quadrature. A difference is called `better` or `worse` only when the two sides'
ranges do not overlap at all and it is larger than its uncertainty; for a change that does nothing, that happens by
chance in 1 case in C(2n, n) each way with n rounds a side (1 in 20 for three,
1 in 252 for five, the default), per metric and percentile; anything else is
`within spread`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

METRICS = ("ttft", "tpot", "e2e")
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class RequestTiming:
    """One request as its client saw it, in seconds."""

    ttft: float
    e2e: float
    output_tokens: int

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first; None for a one-token answer."""
        if self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def round_summary(timings: Sequence[RequestTiming]) -> dict[str, dict[int, float]]:
    """{metric: {percentile: seconds}} of one round."""
    series = {
        "ttft": [t.ttft for t in timings],
        "tpot": [t.tpot for t in timings if t.tpot is not None],
        "e2e": [t.e2e for t in timings],
    }
    return {m: {p: percentile(v, p) for p in PERCENTILES} for m, v in series.items() if v}


@dataclass(frozen=True)
class Side:
    median: float
    low: float
    high: float

    @property
    def half_range(self) -> float:
        return (self.high - self.low) / 2

    @classmethod
    def of(cls, values: Sequence[float]) -> Side:
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Comparison:
    metric: str
    percentile: int
    before: Side
    after: Side

    @property
    def difference(self) -> float:
        return self.after.median - self.before.median

    @property
    def difference_pct(self) -> float | None:
        return None if self.before.median == 0 else 100 * self.difference / self.before.median

    @property
    def uncertainty(self) -> float:
        return math.hypot(self.before.half_range, self.after.half_range)

    @property
    def verdict(self) -> str:
        if abs(self.difference) > self.uncertainty:
            if self.after.high < self.before.low:
                return "better"
            if self.after.low > self.before.high:
                return "worse"
        return "within spread"

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric, "percentile": self.percentile,
            "before": vars(self.before), "after": vars(self.after),
            "difference_s": self.difference, "difference_pct": self.difference_pct,
            "uncertainty_s": self.uncertainty, "verdict": self.verdict,
        }


def compare(before: Sequence[dict[str, dict[int, float]]], after: Sequence[dict[str, dict[int, float]]]
            ) -> list[Comparison]:
    """Every metric and percentile that all rounds of both sides have."""
    out = []
    for metric in METRICS:
        for p in PERCENTILES:
            b = [r[metric][p] for r in before if metric in r]
            a = [r[metric][p] for r in after if metric in r]
            if b and a and len(b) == len(before) and len(a) == len(after):
                out.append(Comparison(metric, p, Side.of(b), Side.of(a)))
    return out
