"""Request histograms from vLLM spans, each bucket carrying the trace id of the
latest request that landed in it (an OpenMetrics exemplar), so a latency spike on
a dashboard links to a trace that `infernode explain` can answer for."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Mapping

from agent.catalog import MetricSpec
from agent.samples import Exemplar, HistogramValue, Sample
from agent.tracing.spans import RequestSpan
from agent.tracing.specs import (
    CAUSE_SECONDS_TOTAL,
    CAUSES_TOTAL,
    COMPLETION_TOKENS_TOTAL,
    HISTOGRAM_SPECS,
    HISTOGRAMS,
    PROMPT_TOKENS_TOTAL,
    SLOW_TOTAL,
)
from agent.usage import TokenTotals


class _Hist:
    __slots__ = ("bounds", "counts", "sum", "exemplars")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        # (trace id, value, timestamp) of each bucket's latest observation: made into
        # an Exemplar when scraped, not on each of the many observations in between.
        self.exemplars: list[tuple[str, float, float] | None] = [None] * (len(bounds) + 1)

    def observe(self, v: float, trace_id: str, ts: float) -> None:
        i = bisect.bisect_left(self.bounds, v)
        self.counts[i] += 1
        self.sum += v
        self.exemplars[i] = (trace_id, v, ts)

    def value(self) -> HistogramValue:
        buckets = []
        exemplars = {}
        acc = 0
        for i, le in enumerate((*self.bounds, float("inf"))):
            acc += self.counts[i]
            buckets.append((le, float(acc)))
            ex = self.exemplars[i]
            if ex is not None:
                exemplars[le] = Exemplar({"trace_id": ex[0]}, ex[1], ex[2])
        return HistogramValue(buckets, self.sum, exemplars)


class RequestMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hists: dict[tuple[MetricSpec, str, str], _Hist] = {}
        self._counters: dict[tuple[MetricSpec, tuple[str, ...]], float] = {}

    def _inc(self, spec: MetricSpec, labels: tuple[str, ...], v: float = 1.0) -> None:
        key = (spec, labels)
        self._counters[key] = self._counters.get(key, 0.0) + v

    def observe(self, r: RequestSpan, worker: str, slow_phases: Iterable[str] = (), top_cause: str | None = None,
                slow: bool = False, cause_seconds: Mapping[str, float] | None = None) -> None:
        values = {"ttft": r.ttft, "queue": r.queue, "prefill": r.prefill, "decode": r.decode, "e2e": r.e2e,
                  "tpot": r.tpot}
        ts = (r.start_ns + int(r.e2e * 1e9)) / 1e9 if r.start_ns else time.time()
        with self._lock:
            for name, (field, bounds, _) in HISTOGRAMS.items():
                v = values[field]
                if v is None:
                    continue
                key = (HISTOGRAM_SPECS[name], worker, r.model_name)
                h = self._hists.get(key)
                if h is None:
                    h = self._hists[key] = _Hist(bounds)
                h.observe(v, r.trace_id, ts)
            labels = (worker, r.model_name)
            self._inc(PROMPT_TOKENS_TOTAL, labels, r.prompt_tokens)
            self._inc(COMPLETION_TOKENS_TOTAL, labels, r.completion_tokens)
            for phase in slow_phases:
                self._inc(SLOW_TOTAL, (worker, r.model_name, phase))
            if slow:
                self._inc(CAUSES_TOTAL, (worker, top_cause or "none"))
            for kind, seconds in (cause_seconds or {}).items():
                self._inc(CAUSE_SECONDS_TOTAL, (worker, kind), seconds)

    def token_totals(self) -> dict[str, TokenTotals]:
        """Prompt and completion tokens and finished requests so far, per worker."""
        out: dict[str, list[int]] = {}
        with self._lock:
            for (spec, labels), v in self._counters.items():
                if spec is PROMPT_TOKENS_TOTAL or spec is COMPLETION_TOKENS_TOTAL:
                    acc = out.setdefault(labels[0], [0, 0, 0])
                    acc[0 if spec is PROMPT_TOKENS_TOTAL else 1] += int(v)
            e2e = HISTOGRAM_SPECS["infernode_request_e2e_seconds"]
            for (spec, worker, _), h in self._hists.items():
                if spec is e2e:
                    out.setdefault(worker, [0, 0, 0])[2] += sum(h.counts)
        return {w: TokenTotals(p, c, n) for w, (p, c, n) in out.items()}

    def samples(self) -> Iterable[Sample]:
        with self._lock:
            hists = [(k, h.value()) for k, h in self._hists.items()]
            counters = list(self._counters.items())
        for (spec, worker, model), hv in hists:
            yield spec.emit({"worker": worker, "model_name": model}, hv)
        for (spec, labels), v in counters:
            yield spec.emit(dict(zip(spec.labels, labels, strict=True)), v)
