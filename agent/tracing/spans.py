"""OTLP trace payloads: decoding, and reading vLLM's `llm_request` spans.

Pure functions over bytes and protobuf messages; the receivers do the I/O.
Attribute names are vLLM's (vllm/tracing/utils.py SpanAttributes): latencies in
seconds, token counts as ints, `vllm.process_id` on the resource.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agent.untyped import OtlpAttribute

LLM_REQUEST = "llm_request"

TTFT = "gen_ai.latency.time_to_first_token"
E2E = "gen_ai.latency.e2e"
QUEUE = "gen_ai.latency.time_in_queue"
PREFILL = "gen_ai.latency.time_in_model_prefill"
DECODE = "gen_ai.latency.time_in_model_decode"
INFERENCE = "gen_ai.latency.time_in_model_inference"
PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
REQUEST_ID = "gen_ai.request.id"
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_MODEL = "gen_ai.request.model"
PROCESS_ID = "vllm.process_id"
SERVICE_NAME = "service.name"

REQUIRED = (TTFT, E2E, QUEUE, PREFILL, DECODE, PROMPT_TOKENS, COMPLETION_TOKENS)


class PayloadError(ValueError):
    """An export request the receiver refuses; `reason` labels the rejection counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, refusing to inflate past `limit` bytes (a zip bomb
    must not get the agent OOM-killed)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise PayloadError("unsupported_encoding", f"content-encoding {encoding!r} is not supported (gzip, deflate)")
    wbits = 16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise PayloadError("malformed", f"{enc} body does not decompress: {e}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise PayloadError("too_large", f"decompressed payload exceeds {limit} bytes")
    if not d.eof:
        raise PayloadError("malformed", f"{enc} body is truncated")
    return out


def decode_export(body: bytes) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as e:
        raise PayloadError("malformed", f"not an OTLP ExportTraceServiceRequest: {e}") from None
    return req


def any_value(v: AnyValue) -> OtlpAttribute:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    return getattr(v, which)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, OtlpAttribute]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def set_attribute(kvs: RepeatedCompositeFieldContainer[KeyValue], key: str, value: str | int | float | bool) -> None:
    """Set (replace or append) one attribute on a repeated KeyValue field."""
    for kv in kvs:
        if kv.key == key:
            put_value(kv.value, value)
            return
    kv = kvs.add()
    kv.key = key
    put_value(kv.value, value)


def put_value(av: AnyValue, value: str | int | float | bool) -> None:
    if isinstance(value, bool):
        av.bool_value = value
    elif isinstance(value, int):
        av.int_value = value
    elif isinstance(value, float):
        av.double_value = value
    else:
        av.string_value = str(value)


def key_values(mapping: Mapping[str, Any]) -> list[KeyValue]:
    out = []
    for k, v in mapping.items():
        kv = KeyValue(key=k)
        put_value(kv.value, v)
        out.append(kv)
    return out


def iter_spans(req: ExportTraceServiceRequest) -> Iterator[tuple[Resource, Span]]:
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield rs.resource, span


@dataclass(frozen=True, slots=True)
class RequestSpan:
    """What the agent needs from one `llm_request` span; times in ns, latencies in s."""

    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    ttft: float
    e2e: float
    queue: float
    prefill: float
    decode: float
    prompt_tokens: int
    completion_tokens: int
    request_id: str = ""
    model_name: str = "unknown"
    pid: int | None = None
    service_name: str = ""
    # vLLM always sets it (output_processor.py); optional so older senders still parse.
    inference: float = 0.0

    @property
    def tpot(self) -> float | None:
        # vLLM does not count the token produced by prefill (stats.py mean_time_per_output_token).
        if self.completion_tokens < 2:
            return None
        return self.decode / (self.completion_tokens - 1)


class SpanError(ValueError):
    """An llm_request span that cannot be read (missing or mistyped attribute)."""


def _number(attrs: Mapping[str, Any], key: str) -> float:
    v = attrs.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpanError(f"attribute {key} is {_short(v)}, expected a number")
    # A huge int overflows float(); +Inf and NaN are no latency either.
    try:
        f = float(v)
    except OverflowError:
        raise SpanError(f"attribute {key} is {_short(v)}, expected a finite number") from None
    if not math.isfinite(f) or f < 0:
        raise SpanError(f"attribute {key} is {_short(v)}, expected a finite non-negative number")
    return f


def _short(v: object, limit: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "..."


# vllm.process_id is str(os.getpid()) (vllm/tracing/otel.py); Linux pids fit in 22 bits.
PID_MAX = 1 << 22


def parse_pid(raw: object) -> int | None:
    """A pid from the resource attribute, or None: ASCII digits only ("²" is a digit
    to str.isdigit() but not to int()), in the kernel's range."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 < raw < PID_MAX else None
    if isinstance(raw, str) and 0 < len(raw) <= 7 and raw.isascii() and raw.isdigit():
        pid = int(raw)
        return pid if 0 < pid < PID_MAX else None
    return None


# A token count past this is no request's (vLLM's longest contexts are ~10^7 tokens).
MAX_TOKENS = 10**9


def _int(attrs: Mapping[str, Any], key: str) -> int:
    v = _number(attrs, key)
    if not v.is_integer() or v > MAX_TOKENS:
        raise SpanError(f"attribute {key} is {_short(attrs.get(key))}, expected a whole count up to {MAX_TOKENS}")
    return int(v)


def parse_request_span(span: Span, resource_attrs: Mapping[str, Any]) -> RequestSpan:
    """Read an `llm_request` span; raises SpanError naming the bad attribute."""
    attrs = attributes(span.attributes)
    missing = [k for k in REQUIRED if k not in attrs]
    if missing:
        raise SpanError("missing attributes: " + ", ".join(missing))
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise SpanError("trace_id must be 16 bytes, not all zero")
    pid = parse_pid(resource_attrs.get(PROCESS_ID))
    # vLLM 0.33 sets neither (GEN_AI_RESPONSE_MODEL is defined but never set); the
    # pipeline names the model from the worker then.
    model = attrs.get(RESPONSE_MODEL) or attrs.get(REQUEST_MODEL) or "unknown"
    start = int(span.start_time_unix_nano)
    e2e = _number(attrs, E2E)
    end = int(span.end_time_unix_nano) if span.end_time_unix_nano >= start else start + int(e2e * 1e9)
    return RequestSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        start_ns=start,
        end_ns=end,
        ttft=_number(attrs, TTFT),
        e2e=e2e,
        queue=_number(attrs, QUEUE),
        prefill=_number(attrs, PREFILL),
        decode=_number(attrs, DECODE),
        prompt_tokens=_int(attrs, PROMPT_TOKENS),
        completion_tokens=_int(attrs, COMPLETION_TOKENS),
        request_id=str(attrs.get(REQUEST_ID, ""))[:256],
        model_name=str(model)[:256],
        pid=pid,
        service_name=str(resource_attrs.get(SERVICE_NAME, ""))[:256],
        inference=_number(attrs, INFERENCE) if INFERENCE in attrs else 0.0,
    )


# vLLM measures e2e and TTFT on the API server's clock and the phases on EngineCore's
# monotonic clock, handed over by IPC: a phase may pass e2e by this much.
PHASE_SLACK_S = 0.05
PHASE_SLACK_RATIO = 0.01


def implausible(r: RequestSpan, max_e2e: float) -> str | None:
    """Why the span's timings cannot be a request's, or None when they can."""
    if r.e2e > max_e2e:
        return f"e2e {r.e2e:g}s is over explain.max_e2e ({max_e2e:g}s)"
    bound = r.e2e * (1 + PHASE_SLACK_RATIO) + PHASE_SLACK_S
    for name, v in (("ttft", r.ttft), ("queue", r.queue), ("prefill", r.prefill), ("decode", r.decode),
                    ("inference", r.inference)):
        if v > bound:
            return f"{name} {v:g}s is longer than e2e {r.e2e:g}s"
    return None


def aborted(r: RequestSpan, max_e2e: float) -> bool:
    """A span vLLM's engine sent for a request it aborted, not one it served.

    vLLM 0.33 sends an llm_request span for requests the engine aborts (SIGTERM
    with --shutdown-timeout 0, requests refused while draining: v1/engine/core.py),
    with no finish reason on it. A never-scheduled one has queued/scheduled
    timestamps of 0, so its prefill and inference read EngineCore's monotonic clock
    (about the host's uptime), and no generated tokens. A served request always
    generates at least one token. Its phases may be far longer than its e2e (that
    clock), but its e2e is still a real one: a span over max_e2e is no request's."""
    return r.completion_tokens == 0 and r.e2e <= max_e2e
