"""Property-based fuzzing (hypothesis) of what the agent parses from the network:
OTLP protobuf and JSON exports, llm_request span attributes, and the vLLM /metrics
text it scrapes. Any input is decoded or refused with the parser's own error, and
the ingest never raises and counts every span."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.events import EventStore
from agent.tracing import spans as sp
from agent.tracing.otlp_json import decode_export_json
from agent.worker.scrape import MalformedExposition, parse_vllm_metrics

from .spanfactory import export
from .test_pipeline import _enricher

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_protobuf_bodies(raw):
    try:
        req = sp.decode_export(raw)
    except sp.PayloadError as e:
        assert e.reason == "malformed"
        return
    e = _enricher(EventStore())
    c = e.process(req)
    total = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    assert c.llm_request + c.other + c.invalid + c.aborted + c.startup == total


_json_atoms = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
_json = st.recursive(_json_atoms, lambda ch: st.one_of(
    st.lists(ch, max_size=3),
    st.dictionaries(st.sampled_from(["resourceSpans", "scopeSpans", "spans", "attributes", "key", "value",
                                     "doubleValue", "intValue", "stringValue", "traceId", "spanId", "name",
                                     "startTimeUnixNano", "resource"]), ch, max_size=4)), max_leaves=25)


@FUZZ
@given(_json)
def test_fuzz_json_bodies(doc):
    import json

    try:
        req = decode_export_json(json.dumps(doc).encode())
    except sp.PayloadError as e:
        assert e.reason == "malformed"
        return
    _enricher(EventStore()).process(req)


_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**63, 2**63 - 1),
                    st.text(max_size=8), st.booleans())


@FUZZ
@given(st.dictionaries(st.sampled_from([sp.TTFT, sp.E2E, sp.QUEUE, sp.PREFILL, sp.DECODE, sp.INFERENCE,
                                        sp.PROMPT_TOKENS, sp.COMPLETION_TOKENS, sp.REQUEST_ID]),
                       _values, max_size=9),
       st.one_of(st.none(), st.text(max_size=10), st.integers(-5, 2**40)))
def test_fuzz_span_attributes(attrs, pid):
    e = _enricher(EventStore())
    c = e.process(export(3, pid=pid, overrides={1: attrs}))
    assert c.llm_request + c.invalid + c.aborted == 3
    assert c.llm_request >= 2  # the neighbours of the fuzzed span are never lost


_metric_lines = st.sampled_from([
    "# TYPE vllm:x counter\n", "vllm:x_total 1\n", "vllm:x_total{a=\"b\"} 2\n", "# TYPE vllm:h histogram\n",
    "vllm:h_bucket{le=\"1\"} 1\n", "vllm:h_bucket{le=\"+Inf\"} 2\n", "vllm:h_count 2\n", "vllm:h_sum 3\n",
    "vllm:g NaN\n", "vllm:g +Inf\n", "# HELP vllm:g x\n", "http_requests_total{status=\"5xx\"} 1\n",
    "garbage{\n", "vllm:h_bucket{le=\"x\"} 1\n", "\n", "vllm:g 1e999\n",
])


@FUZZ
@given(st.lists(_metric_lines, max_size=12), st.text(max_size=30))
def test_fuzz_vllm_metrics_text(lines, tail):
    try:
        parsed = parse_vllm_metrics("".join(lines) + tail, "w0", "0")
    except MalformedExposition:
        return
    assert all(s.labels.get("worker") == "w0" for s in parsed.samples)
