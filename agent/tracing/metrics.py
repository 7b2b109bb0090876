"""Request histograms from vLLM spans, each bucket carrying the trace id of the
latest request that landed in it (an OpenMetrics exemplar), so a latency spike on
a dashboard links to a trace that `infernode explain` can answer for."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable

from agent.catalog import MetricSpec, MetricType
from agent.samples import Exemplar, HistogramValue, Sample
from agent.tracing.spans import RequestSpan

# vLLM's own bounds (vllm/v1/metrics/loggers.py), so these compare bucket for bucket
# with vllm:time_to_first_token_seconds and friends.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
                1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
                   40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)

_SRC = "vLLM llm_request spans via the agent's OTLP receiver"
_LABELS = ("worker", "model_name")

HISTOGRAMS = {
    "infernode_request_ttft_seconds": ("ttft", TTFT_BUCKETS, "Time to first token of each request, from its llm_request span."),
    "infernode_request_tpot_seconds": ("tpot", TPOT_BUCKETS,
                                       "Time per output token after the first: decode time over completion tokens minus one."),
    "infernode_request_queue_seconds": ("queue", REQUEST_BUCKETS, "Time each request waited in the scheduler queue."),
    "infernode_request_prefill_seconds": ("prefill", REQUEST_BUCKETS, "Time from first scheduling to the first token."),
    "infernode_request_decode_seconds": ("decode", REQUEST_BUCKETS, "Time from the first to the last token."),
    "infernode_request_e2e_seconds": ("e2e", REQUEST_BUCKETS, "End-to-end latency of each request, arrival to finish."),
}

HISTOGRAM_SPECS = {
    name: MetricSpec(name, MetricType.HISTOGRAM, help_, unit="seconds", labels=_LABELS, source=_SRC, buckets=buckets)
    for name, (_, buckets, help_) in HISTOGRAMS.items()
}
PROMPT_TOKENS_TOTAL = MetricSpec("infernode_request_prompt_tokens_total", MetricType.COUNTER,
                                 "Prompt tokens of finished requests.", labels=_LABELS, source=_SRC)
COMPLETION_TOKENS_TOTAL = MetricSpec("infernode_request_completion_tokens_total", MetricType.COUNTER,
                                     "Completion tokens of finished requests.", labels=_LABELS, source=_SRC)
SLOW_TOTAL = MetricSpec("infernode_request_slow_total", MetricType.COUNTER,
                        "Requests over their phase's SLO or the worker's rolling p99, by phase.",
                        labels=("worker", "model_name", "phase"), source=_SRC)
CAUSES_TOTAL = MetricSpec("infernode_request_causes_total", MetricType.COUNTER,
                          "Slow requests by the kind of their top-ranked cause (none when no known cause).",
                          labels=("worker", "kind"), source="agent correlation of spans with the event store")
REQUEST_SPECS = (*HISTOGRAM_SPECS.values(), PROMPT_TOKENS_TOTAL, COMPLETION_TOKENS_TOTAL, SLOW_TOTAL, CAUSES_TOTAL)


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
                slow: bool = False) -> None:
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

    def samples(self) -> Iterable[Sample]:
        with self._lock:
            hists = [(k, h.value()) for k, h in self._hists.items()]
            counters = list(self._counters.items())
        for (spec, worker, model), hv in hists:
            yield spec.emit({"worker": worker, "model_name": model}, hv)
        for (spec, labels), v in counters:
            yield spec.emit(dict(zip(spec.labels, labels, strict=True)), v)
