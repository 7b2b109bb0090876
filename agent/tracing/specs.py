"""The tracing subsystem's metric declarations: the OTLP receiver and forwarder,
and the per-request latency metrics (see agent/catalog.py)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType

OTLP_RECEIVER_UP = MetricSpec(
    "infernode_otlp_receiver_up", MetricType.GAUGE,
    "Whether the OTLP receiver listens (1) or could not bind its address (0).",
    labels=("transport",), source="agent OTLP receiver"
)
OTLP_REJECTED_TOTAL = MetricSpec(
    "infernode_otlp_rejected_total", MetricType.COUNTER,
    "OTLP export requests refused, by reason: malformed, too_large, content_type, unsupported_encoding, "
    "truncated, body_timeout (HTTP), not_received (gRPC ended the call before the agent saw it).",
    labels=("transport", "reason"), source="agent OTLP receiver"
)
OTLP_RECEIVED_SPANS_TOTAL = MetricSpec(
    "infernode_otlp_received_spans_total", MetricType.COUNTER,
    "Spans received, by kind: llm_request (enriched), other (passed through), invalid "
    "(an llm_request span missing, mistyped or implausible latency attributes, passed through), "
    "aborted (an llm_request span vLLM's engine sent for a request it aborted: no token "
    "generated; kept out of the request metrics), startup (a managed worker's start-up phase).",
    labels=("kind",), source="agent OTLP receiver"
)
REQUEST_SPANS_TOTAL = MetricSpec(
    "infernode_request_spans_total", MetricType.COUNTER,
    "Spans named llm_request received from each worker, of any kind (invalid and aborted too); "
    "divided by the worker's "
    "vllm:request_success_total rate, the share of its requests whose spans arrived.",
    labels=("worker",), source="agent OTLP receiver"
)
OTLP_ENRICH_SECONDS_TOTAL = MetricSpec(
    "infernode_otlp_enrich_seconds_total", MetricType.COUNTER,
    "CPU-bound time spent correlating llm_request spans with the event store.",
    unit="seconds", source="agent correlation"
)
OTLP_FORWARDED_SPANS_TOTAL = MetricSpec(
    "infernode_otlp_forwarded_spans_total", MetricType.COUNTER,
    "Spans delivered to the upstream OTLP endpoint (otlp.forward.endpoint).",
    source="agent OTLP forwarder"
)
OTLP_FORWARD_DROPPED_SPANS_TOTAL = MetricSpec(
    "infernode_otlp_forward_dropped_spans_total", MetricType.COUNTER,
    "Spans not delivered upstream, by reason: queue_full, rejected, retries_exhausted, shutdown.",
    labels=("reason",), source="agent OTLP forwarder"
)
OTLP_FORWARD_QUEUE_SPANS = MetricSpec(
    "infernode_otlp_forward_queue_spans", MetricType.GAUGE,
    "Spans waiting to be forwarded upstream.", source="agent OTLP forwarder"
)
OTLP_SPECS = (
    OTLP_RECEIVER_UP,
    OTLP_REJECTED_TOTAL,
    OTLP_RECEIVED_SPANS_TOTAL,
    REQUEST_SPANS_TOTAL,
    OTLP_ENRICH_SECONDS_TOTAL,
    OTLP_FORWARDED_SPANS_TOTAL,
    OTLP_FORWARD_DROPPED_SPANS_TOTAL,
    OTLP_FORWARD_QUEUE_SPANS,
)


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
CAUSE_SECONDS_TOTAL = MetricSpec(
    "infernode_request_cause_seconds_total", MetricType.COUNTER,
    "Seconds of finished requests' latency each kind of cause explains, slow requests or not "
    "(against infernode_request_e2e_seconds_sum: the share of latency it costs).",
    unit="seconds", labels=("worker", "kind"), source="agent correlation of spans with the event store")
REQUEST_SPECS = (*HISTOGRAM_SPECS.values(), PROMPT_TOKENS_TOTAL, COMPLETION_TOKENS_TOTAL, SLOW_TOTAL, CAUSES_TOTAL,
                 CAUSE_SECONDS_TOTAL)
