"""Whether a request was slow: above its phase's SLO, or above the rolling p99 of
its worker for that phase.

The p99 is over the last `window` requests of the worker and is recomputed every
`refresh` requests, not on each one: sorting a thousand values per span would cost
more than the rest of the enrichment together, and a p99 that lags by a few dozen
requests judges the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from agent.tracing.settings import SloSettings
from agent.tracing.spans import RequestSpan

JUDGED = ("ttft", "tpot", "queue", "prefill", "decode", "e2e")


def latencies(r: RequestSpan) -> dict[str, float]:
    out = {"ttft": r.ttft, "queue": r.queue, "prefill": r.prefill, "decode": r.decode, "e2e": r.e2e}
    if r.tpot is not None:
        out["tpot"] = r.tpot
    return out


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list."""
    if not sorted_values:
        raise ValueError("no values")
    idx = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.999999) - 1))
    return sorted_values[idx]


class _Rolling:
    __slots__ = ("values", "since_refresh", "p99")

    def __init__(self, window: int) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.since_refresh = 0
        self.p99: float | None = None


class SlowJudge:
    def __init__(self, slo: SloSettings, window: int = 1000, min_requests: int = 100, refresh: int = 25) -> None:
        self.slo = slo
        self.window = window
        self.min_requests = min_requests
        self.refresh = max(1, refresh)
        self._rolling: dict[tuple[str, str], _Rolling] = {}

    def judge(self, worker: str, values: Mapping[str, float]) -> list[dict[str, object]]:
        """Phases over their threshold, judged before this request joins the window
        (a request cannot lift the bar it is measured against)."""
        out: list[dict[str, object]] = []
        for phase in JUDGED:
            v = values.get(phase)
            if v is None:
                continue
            slo = getattr(self.slo, phase)
            roll = self._rolling.get((worker, phase))
            if roll is None:
                roll = self._rolling[(worker, phase)] = _Rolling(self.window)
            if slo is not None and v > slo:
                out.append({"phase": phase, "seconds": v, "threshold_seconds": slo, "basis": "slo"})
            elif roll.p99 is not None and v > roll.p99:
                out.append({"phase": phase, "seconds": v, "threshold_seconds": roll.p99, "basis": "p99"})
            roll.values.append(v)
            roll.since_refresh += 1
            if len(roll.values) >= self.min_requests and (roll.p99 is None or roll.since_refresh >= self.refresh):
                roll.p99 = quantile(sorted(roll.values), 0.99)
                roll.since_refresh = 0
        return out

    def p99(self, worker: str, phase: str) -> float | None:
        roll = self._rolling.get((worker, phase))
        return roll.p99 if roll else None
