"""Builds llm_request spans exactly as vLLM's output processor sets them
(vllm/v1/engine/output_processor.py do_tracing), for tests."""

from __future__ import annotations

import os

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agent.tracing import spans as sp
from agent.tracing.spans import RequestSpan

T0 = 1_700_000_000_000_000_000  # a realtime ns origin


def request(start_ms: float = 0.0, ttft: float = 0.4, queue: float = 0.05, prefill: float = 0.3,
            decode: float = 0.6, e2e: float | None = None, completion: int = 31, prompt: int = 100,
            trace_id: str | None = None, pid: int | None = None, service: str = "vllm") -> RequestSpan:
    e2e = ttft + decode + 0.01 if e2e is None else e2e
    start = T0 + int(start_ms * 1e6)
    return RequestSpan(
        trace_id=trace_id or os.urandom(16).hex(), span_id=os.urandom(8).hex(), start_ns=start,
        end_ns=start + int(e2e * 1e9), ttft=ttft, e2e=e2e, queue=queue, prefill=prefill, decode=decode,
        prompt_tokens=prompt, completion_tokens=completion, request_id="cmpl-1", model_name="m",
        pid=pid, service_name=service,
    )


def export(n: int = 1, pid: int | str | None = 4242, service: str = "vllm", start_ns: int = T0, ttft: float = 0.4,
           e2e: float = 1.0, other: int = 0, overrides: dict[int, dict] | None = None) -> ExportTraceServiceRequest:
    """`n` llm_request spans (then `other` spans of another name); `overrides` maps a
    span's index to attributes that replace or add to its own."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    res = {"service.name": service}
    if pid is not None:
        res["vllm.process_id"] = str(pid)  # vLLM: str(os.getpid())
    rs.resource.attributes.extend(sp.key_values(res))
    ss = rs.scope_spans.add()
    ss.scope.name = "vllm.tracing.otel"
    for i in range(n + other):
        span = ss.spans.add()
        span.trace_id = os.urandom(16)
        span.span_id = os.urandom(8)
        span.kind = Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = start_ns + i * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + int(e2e * 1e9)
        if i >= n:
            span.name = "preprocess"
            continue
        span.name = "llm_request"
        attrs = {
            sp.TTFT: ttft, sp.E2E: e2e, sp.QUEUE: 0.01, sp.PREFILL: ttft - 0.02, sp.DECODE: e2e - ttft - 0.01,
            sp.INFERENCE: e2e - 0.03, sp.PROMPT_TOKENS: 12, sp.COMPLETION_TOKENS: 20, sp.REQUEST_ID: f"cmpl-{i}",
        }
        attrs.update((overrides or {}).get(i, {}))
        span.attributes.extend(sp.key_values(attrs))
    return req
