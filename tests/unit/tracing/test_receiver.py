"""OTLP receiver round trips with the real OpenTelemetry exporters, and refusals."""

import gzip
import json
import os
import time
import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agent.cgroups import cgroup_of_pid
from agent.events import Event
from agent.exposition import render
from agent.paths import Paths

from .agentloop import AgentLoop
from .sdkspans import emit_llm_request, emit_other, provider
from .spanfactory import export

SMALL = 64 * 1024


@pytest.fixture(scope="module")
def agent():
    with AgentLoop({"otlp": {"max_payload": SMALL}}) as a:
        yield a


def post(url: str, body: bytes, ctype: str = "application/x-protobuf", encoding: str | None = None):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    if encoding:
        req.add_header("Content-Encoding", encoding)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def rejected(agent: AgentLoop, transport: str, reason: str) -> int:
    return agent.tracing.rejected.get((transport, reason), 0)


def exposition(agent: AgentLoop) -> str:
    node = agent.daemon.telemetry
    body, _ = render(node.runtime.scrape(), node.catalog, openmetrics=True)
    return body.decode()


def test_http_round_trip_with_real_exporter(agent):
    before = agent.tracing.enricher.counts.llm_request
    tp = provider(HttpExporter(endpoint=agent.http_url))
    trace_id = emit_llm_request(tp, ttft=0.42)
    emit_other(tp)
    tp.shutdown()
    agent.flush()
    assert agent.tracing.enricher.counts.llm_request == before + 1
    assert agent.tracing.enricher.counts.other >= 1
    (ex,) = agent.tracing.recent.by_trace(trace_id)
    assert ex.request.ttft == pytest.approx(0.42)
    assert ex.request.pid == os.getpid()
    text = exposition(agent)
    # the TTFT bucket le=0.5 holds this request, with its trace id as exemplar
    line = next(ln for ln in text.splitlines()
                if ln.startswith("infernode_request_ttft_seconds_bucket") and 'le="0.5"' in ln)
    assert f'trace_id="{trace_id}"' in line


def test_grpc_round_trip_with_real_exporter(agent):
    tp = provider(GrpcExporter(endpoint=agent.grpc_target, insecure=True))
    trace_id = emit_llm_request(tp, ttft=0.07, decode=0.2, completion=11)
    tp.shutdown()
    agent.flush()
    (ex,) = agent.tracing.recent.by_trace(trace_id)
    assert ex.request.tpot == pytest.approx(0.2 / 10)
    assert f'trace_id="{trace_id}"' in exposition(agent)


def test_span_overlapping_a_runqueue_wait_is_explained(agent):
    cg = cgroup_of_pid(Paths(), os.getpid())
    now = time.time_ns()
    start = now - 2_000_000_000
    # 150 ms run-queue wait inside the prefill of a request arriving at `start`
    agent.daemon.events.add(Event(start + 100_000_000, start + 250_000_000, "runqueue_wait", f"cgroup:{cg}", 0.15,
                                  {"tid": os.getpid(), "cpu": 1, "holder_pid": 99, "holder_comm": "hog"}))
    # A sender of its own: its worker's typical prompt is not learned from other tests' requests.
    tp = provider(HttpExporter(endpoint=agent.http_url), service="vllm-runqueue")
    trace_id = emit_llm_request(tp, start_ns=start, ttft=0.4, queue=0.02, prefill=0.36)
    tp.shutdown()
    agent.flush()
    (ex,) = agent.tracing.recent.by_trace(trace_id)
    assert ex.causes and ex.causes[0].kind == "runqueue_wait"
    assert ex.causes[0].explained_s == pytest.approx(0.15, abs=1e-6)
    assert "CPU held by thread 99 (hog)" in ex.verdict


def test_truncated_protobuf_is_400_and_counted(agent):
    body = export(3).SerializeToString()
    n = rejected(agent, "http", "malformed")
    status, resp, headers = post(agent.http_url, body[: len(body) // 2])
    assert status == 400
    assert status_pb2.Status.FromString(resp).message.startswith("not an OTLP")
    assert rejected(agent, "http", "malformed") == n + 1


def test_oversized_is_413_and_counted(agent):
    n = rejected(agent, "http", "too_large")
    status, _, _ = post(agent.http_url, b"\x0a" * (SMALL + 1))
    assert status == 413
    assert rejected(agent, "http", "too_large") == n + 1


def test_gzip_bomb_is_413(agent):
    bomb = gzip.compress(b"\0" * (SMALL * 8))
    assert len(bomb) < SMALL
    status, _, _ = post(agent.http_url, bomb, encoding="gzip")
    assert status == 413


def test_gzip_body_accepted(agent):
    before = agent.tracing.enricher.counts.llm_request
    status, resp, headers = post(agent.http_url, gzip.compress(export(2).SerializeToString()), encoding="gzip")
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    ExportTraceServiceResponse.FromString(resp)
    agent.flush()
    assert agent.tracing.enricher.counts.llm_request == before + 2


def test_wrong_content_type_is_415_and_counted(agent):
    n = rejected(agent, "http", "content_type")
    status, _, _ = post(agent.http_url, b"hello", ctype="text/plain")
    assert status == 415
    assert rejected(agent, "http", "content_type") == n + 1


def test_unknown_encoding_is_415(agent):
    status, _, _ = post(agent.http_url, b"x", encoding="br")
    assert status == 415


def test_otlp_json_accepted(agent):
    trace_id = os.urandom(16).hex()
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "vllm"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": trace_id, "spanId": os.urandom(8).hex(), "name": "llm_request",
                "startTimeUnixNano": str(time.time_ns() - 10**9), "endTimeUnixNano": str(time.time_ns()),
                "attributes": [{"key": k, "value": {"doubleValue": v}} for k, v in (
                    ("gen_ai.latency.time_to_first_token", 0.3), ("gen_ai.latency.e2e", 1.0),
                    ("gen_ai.latency.time_in_queue", 0.01), ("gen_ai.latency.time_in_model_prefill", 0.28),
                    ("gen_ai.latency.time_in_model_decode", 0.69))] + [
                    {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "5"}},
                    {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": "9"}}],
            }]}]}]}
    status, _, _ = post(agent.http_url, json.dumps(body).encode(), ctype="application/json")
    assert status == 200
    agent.flush()
    assert agent.tracing.recent.by_trace(trace_id)[0].request.completion_tokens == 9


def test_bad_json_is_400(agent):
    status, resp, _ = post(agent.http_url, b"{nope", ctype="application/json")
    assert status == 400 and b"not JSON" in resp


def test_llm_request_missing_attributes_passes_through_counted(agent):
    req = export(1)
    del req.resource_spans[0].scope_spans[0].spans[0].attributes[:]
    n = agent.tracing.enricher.counts.invalid
    status, _, _ = post(agent.http_url, req.SerializeToString())
    assert status == 200
    agent.flush()
    assert agent.tracing.enricher.counts.invalid == n + 1


def _raw_export(target: str, payload: bytes):
    with grpc.insecure_channel(target) as ch:
        call = ch.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                              request_serializer=None, response_deserializer=None)
        return call(payload, timeout=10)


def test_grpc_truncated_is_invalid_argument(agent):
    body = export(3).SerializeToString()
    n = rejected(agent, "grpc", "malformed")
    with pytest.raises(grpc.RpcError) as e:
        _raw_export(agent.grpc_target, body[: len(body) // 2])
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert rejected(agent, "grpc", "malformed") == n + 1


def test_grpc_oversized_is_resource_exhausted(agent):
    n = rejected(agent, "grpc", "too_large")
    with pytest.raises(grpc.RpcError) as e:
        _raw_export(agent.grpc_target, export(400).SerializeToString())
    assert e.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rejected(agent, "grpc", "too_large") == n + 1


def test_receiver_survives_garbage_and_still_serves(agent):
    for junk in (b"", b"\xff" * 100, os.urandom(5000)):
        post(agent.http_url, junk)
    tp = provider(HttpExporter(endpoint=agent.http_url))
    trace_id = emit_llm_request(tp)
    tp.shutdown()
    agent.flush()
    assert agent.tracing.recent.by_trace(trace_id)


def test_rejections_are_exposed(agent):
    post(agent.http_url, b"x", ctype="text/plain")
    text = exposition(agent)
    assert 'infernode_otlp_rejected_total{reason="content_type",transport="http"}' in text


def test_port_in_use_leaves_the_agent_serving(agent):
    taken = agent.tracing.http_address[1]
    with AgentLoop({"otlp": {"http_listen": f"127.0.0.1:{taken}"}}) as other:
        t = other.tracing
        assert t.http_address is None and "cannot listen on 127.0.0.1:" in t.receiver_errors["http"]
        assert t.grpc_address is not None  # the other transport still came up
        text = exposition(other)
        assert 'infernode_otlp_receiver_up{transport="http"} 0.0' in text
        assert 'infernode_otlp_receiver_up{transport="grpc"} 1.0' in text
        rows = {r.item: r for r in t.doctor()}
        assert rows["otlp http"].status == "fail" and rows["otlp http"].fix
        urllib.request.urlopen(other.agent_url + "/healthz", timeout=5).close()


def test_reload_moves_the_receivers_and_applies_new_slos():
    from agent.config import parse_config

    with AgentLoop() as a:
        new = parse_config({"server": {"listen": "127.0.0.1:0"},
                            "otlp": {"http_listen": "127.0.0.1:0", "grpc_listen": "127.0.0.1:0", "max_payload": "1MiB"},
                            "explain": {"slo": {"e2e": "10ms"}}}, "<reload>")
        a.call(a.tracing.reload(new))
        assert a.tracing.http_address is not None and a.tracing.grpc_address is not None
        assert a.tracing.enricher.judge.slo.e2e == 0.01
        tp = provider(HttpExporter(endpoint=a.http_url))
        trace_id = emit_llm_request(tp)
        tp.shutdown()
        a.flush()
        (ex,) = a.tracing.recent.by_trace(trace_id)
        assert [s["phase"] for s in ex.slow] == ["e2e"]


@pytest.mark.parametrize("body", [
    b'{"resourceSpans":' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # under this agent's 64 KiB max_payload
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":'
    + b'{"arrayValue":{"values":[' * 400 + b"{}" + b"]}}" * 400 + b"}]}]}]}]}",
])
def test_deeply_nested_json_is_400_malformed_and_counted(agent, body):
    # Issue 18 item 4: this was a 500 with a RecursionError traceback, uncounted.
    n = rejected(agent, "http", "malformed")
    status, resp, _ = post(agent.http_url, body, ctype="application/json")
    assert status == 400 and b"Traceback" not in resp
    assert rejected(agent, "http", "malformed") == n + 1


def test_one_bad_span_costs_only_itself_over_the_wire(agent):
    # Issue 18 item 1: +Inf in one span of a 512-span export dropped it and every later one.
    from agent.tracing import spans as sp

    from .spanfactory import export as spans_export

    before = agent.tracing.enricher.counts
    llm, invalid = before.llm_request, before.invalid
    req = spans_export(120, pid=None, overrides={3: {sp.E2E: float("inf")}, 100: {sp.TTFT: 1e300}})
    status, _, _ = post(agent.http_url, req.SerializeToString())
    agent.flush()
    assert status == 200
    c = agent.tracing.enricher.counts
    assert (c.llm_request - llm, c.invalid - invalid) == (118, 2)
