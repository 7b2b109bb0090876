"""vLLM-shaped llm_request spans made with the real OpenTelemetry SDK."""

from __future__ import annotations

import os
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind


def provider(exporter: SpanExporter, pid: int | None = None, service: str = "vllm") -> TracerProvider:
    attrs = {"service.name": service, "vllm.process_id": pid if pid is not None else os.getpid()}
    tp = TracerProvider(resource=Resource.create(attrs))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def emit_llm_request(tp: TracerProvider, start_ns: int | None = None, ttft: float = 0.4, queue: float = 0.02,
                     prefill: float | None = None, decode: float = 0.6, completion: int = 31, prompt: int = 64) -> str:
    """One finished request, as vLLM reports it (TTFT is queue plus prefill, give or
    take the frontend's share); returns its trace id (hex)."""
    if prefill is None:
        prefill = ttft - queue
    tracer = tp.get_tracer("vllm.tracing.otel")
    e2e = ttft + decode + 0.005
    start = start_ns if start_ns is not None else time.time_ns() - int(e2e * 1e9)
    span = tracer.start_span("llm_request", kind=SpanKind.SERVER, start_time=start)
    span.set_attributes({
        "gen_ai.latency.time_to_first_token": ttft, "gen_ai.latency.e2e": e2e,
        "gen_ai.latency.time_in_queue": queue, "gen_ai.latency.time_in_model_prefill": prefill,
        "gen_ai.latency.time_in_model_decode": decode, "gen_ai.latency.time_in_model_inference": prefill + decode,
        "gen_ai.usage.prompt_tokens": prompt, "gen_ai.usage.completion_tokens": completion,
        "gen_ai.request.id": "cmpl-test", "gen_ai.request.max_tokens": 128,
    })
    trace_id = format(span.get_span_context().trace_id, "032x")
    span.end(end_time=start + int(e2e * 1e9))
    return trace_id


def emit_other(tp: TracerProvider, name: str = "preprocess") -> None:
    with tp.get_tracer("vllm").start_as_current_span(name):
        pass
