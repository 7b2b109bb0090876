import gzip
import zlib

import pytest

from agent.tracing import spans as sp

from .spanfactory import export


def _span_and_resource(req):
    rs = req.resource_spans[0]
    return rs.scope_spans[0].spans[0], sp.attributes(rs.resource.attributes)


def test_parse_llm_request():
    span, res = _span_and_resource(export(1, pid=777, ttft=0.25, e2e=2.0))
    r = sp.parse_request_span(span, res)
    assert r.ttft == 0.25 and r.e2e == 2.0 and r.pid == 777 and r.service_name == "vllm"
    assert r.prompt_tokens == 12 and r.completion_tokens == 20 and r.request_id == "cmpl-0"
    assert r.trace_id == span.trace_id.hex() and len(r.trace_id) == 32
    assert r.tpot == pytest.approx((2.0 - 0.25 - 0.01) / 19)
    assert r.model_name == "unknown"


def test_tpot_skipped_below_two_tokens():
    span, res = _span_and_resource(export(1))
    sp.set_attribute(span.attributes, sp.COMPLETION_TOKENS, 1)
    assert sp.parse_request_span(span, res).tpot is None


def test_model_name_from_response_model():
    span, res = _span_and_resource(export(1))
    sp.set_attribute(span.attributes, sp.RESPONSE_MODEL, "llama-3-8b")
    assert sp.parse_request_span(span, res).model_name == "llama-3-8b"


def test_missing_attribute_is_named():
    span, res = _span_and_resource(export(1))
    keep = [kv for kv in span.attributes if kv.key != sp.TTFT]
    del span.attributes[:]
    span.attributes.extend(keep)
    with pytest.raises(sp.SpanError, match="missing attributes: gen_ai.latency.time_to_first_token"):
        sp.parse_request_span(span, res)


@pytest.mark.parametrize("value", ["fast", -1.0, True])
def test_mistyped_latency_is_refused(value):
    span, res = _span_and_resource(export(1))
    sp.set_attribute(span.attributes, sp.E2E, value)
    with pytest.raises(sp.SpanError, match="gen_ai.latency.e2e"):
        sp.parse_request_span(span, res)


def test_zero_trace_id_is_refused():
    span, res = _span_and_resource(export(1))
    span.trace_id = b"\0" * 16
    with pytest.raises(sp.SpanError, match="trace_id"):
        sp.parse_request_span(span, res)


def test_string_pid_on_resource():
    span, _ = _span_and_resource(export(1))
    assert sp.parse_request_span(span, {"vllm.process_id": "321"}).pid == 321
    assert sp.parse_request_span(span, {"vllm.process_id": "x"}).pid is None


def test_decode_export_round_trip_and_garbage():
    body = export(3, other=2).SerializeToString()
    assert len(list(sp.iter_spans(sp.decode_export(body)))) == 5
    with pytest.raises(sp.PayloadError) as e:
        sp.decode_export(body[:-7])
    assert e.value.reason == "malformed"


def test_decompress_limits():
    data = b"a" * 1000
    assert sp.decompress(gzip.compress(data), "gzip", 1000) == data
    assert sp.decompress(zlib.compress(data), "deflate", 1000) == data
    assert sp.decompress(data, None, 10) == data  # identity: the transport already bounded it
    with pytest.raises(sp.PayloadError) as e:
        sp.decompress(gzip.compress(data), "gzip", 999)
    assert e.value.reason == "too_large"
    with pytest.raises(sp.PayloadError) as e:
        sp.decompress(gzip.compress(data)[:-10], "gzip", 5000)
    assert e.value.reason == "malformed"
    with pytest.raises(sp.PayloadError) as e:
        sp.decompress(b"\x00garbage", "gzip", 5000)
    assert e.value.reason == "malformed"
    with pytest.raises(sp.PayloadError) as e:
        sp.decompress(data, "zstd", 5000)
    assert e.value.reason == "unsupported_encoding"


def test_set_attribute_replaces():
    span, _ = _span_and_resource(export(1))
    sp.set_attribute(span.attributes, "x", 1)
    sp.set_attribute(span.attributes, "x", "two")
    assert sp.attributes(span.attributes)["x"] == "two"
    assert sum(1 for kv in span.attributes if kv.key == "x") == 1


def test_aborted_is_no_generated_token_with_a_real_e2e():
    from .spanfactory import request

    uptime = request(prefill=352_611.2, e2e=0.02, completion=0)  # never scheduled: EngineCore's clock
    assert sp.aborted(uptime, max_e2e=21600.0)
    assert not sp.aborted(request(completion=1), max_e2e=21600.0)
    # No tokens but an e2e no request has: invalid, not aborted.
    assert not sp.aborted(request(e2e=1e12, completion=0), max_e2e=21600.0)
