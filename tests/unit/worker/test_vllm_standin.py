"""The vLLM stand-in speaks vLLM's wire formats: SSE streaming, /metrics names and
buckets, llm_request OTLP spans, drain on SIGTERM, and its fault controls.

It runs as a subprocess on a free loopback port, as the worker tests run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

STANDIN = Path(__file__).resolve().parents[2] / "doubles" / "vllm_standin.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def standin(*args: str, env: dict | None = None):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(STANDIN), "serve", "org/model", "--host", "127.0.0.1",
                             "--port", str(port), "--ttft", "0.01", "--itl", "0.01", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(base + "/v1/models", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(proc.communicate()[0].decode())
            time.sleep(0.05)
    try:
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _post(url: str, body: dict, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _events(raw: bytes) -> list[str]:
    text = raw.decode()
    assert text.endswith("data: [DONE]\n\n")
    parts = text.split("\n\n")[:-1]
    assert all(p.startswith("data: ") for p in parts)
    return [p[len("data: "):] for p in parts]


def test_chat_stream_is_vllm_sse_with_usage_chunk():
    with standin() as (base, _):
        status, raw = _post(base + "/v1/chat/completions", {
            "model": "org/model", "messages": [{"role": "user", "content": "two words"}], "max_tokens": 3,
            "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200
    events = _events(raw)
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "org/model" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] == ["tok0 ", "tok1 ", "tok2 "]
    assert chunks[3]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 2, "total_tokens": 5, "completion_tokens": 3}
    assert len({c["id"] for c in chunks}) == 1


def test_completion_stream_and_plain_json():
    with standin() as (base, _):
        _, raw = _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 2, "stream": True})
        status, body = _post(base + "/v1/completions", {"prompt": "a b c", "max_tokens": 2})
    chunks = [json.loads(e) for e in _events(raw)[:-1]]
    assert [c["object"] for c in chunks] == ["text_completion"] * 2
    assert "usage" not in chunks[-1]
    doc = json.loads(body)
    assert status == 200 and doc["object"] == "text_completion"
    assert doc["choices"][0]["text"] == "tok0 tok1 " and doc["usage"]["prompt_tokens"] == 3


def test_metrics_have_vllm_names_labels_and_buckets():
    with standin("--max-model-len", "4096") as (base, _):
        _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 4})
        text = urllib.request.urlopen(base + "/metrics").read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    ttft = fams["vllm:time_to_first_token_seconds"]
    assert ttft.type == "histogram"
    bounds = [s.labels["le"] for s in ttft.samples if s.name.endswith("_bucket")]
    assert bounds[:3] == ["0.001", "0.005", "0.01"] and bounds[-2:] == ["2560.0", "+Inf"]
    assert {s.labels["model_name"] for s in ttft.samples} == {"org/model"}
    assert {s.labels["engine"] for s in ttft.samples} == {"0"}
    e2e = [s.labels["le"] for s in fams["vllm:e2e_request_latency_seconds"].samples if s.name.endswith("_bucket")]
    assert e2e[0] == "0.3" and e2e[-2] == "7680.0"
    prompt = [s.labels["le"] for s in fams["vllm:request_prompt_tokens"].samples if s.name.endswith("_bucket")]
    assert prompt[-2] == "2000.0"  # 1-2-5 up to max_model_len 4096
    assert fams["vllm:generation_tokens"].type == "counter"
    gen = [s for s in fams["vllm:generation_tokens"].samples if s.name == "vllm:generation_tokens_total"]
    assert gen[0].value == 4
    ok = {s.labels["finished_reason"]: s.value for s in fams["vllm:request_success"].samples
          if s.name.endswith("_total")}
    assert ok["length"] == 1 and set(ok) == {"stop", "length", "abort", "error", "repetition"}
    assert fams["vllm:iteration_tokens_total"].type == "histogram"


def test_sigterm_drains_inflight_and_rejects_new_requests():
    with standin("--shutdown-timeout", "10", "--itl", "0.05") as (base, proc):
        result = {}
        t = threading.Thread(target=lambda: result.update(r=_post(base + "/v1/completions",
                                                                   {"prompt": "x", "max_tokens": 30,
                                                                    "stream": True})))
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        status, _ = _post(base + "/v1/completions", {"prompt": "y", "max_tokens": 1})
        assert status == 503
        assert urllib.request.urlopen(base + "/health", timeout=2).status == 200  # vLLM keeps 200 while draining
        t.join(10)
        assert proc.wait(timeout=10) == 0
    _, raw = result["r"]
    assert len(_events(raw)) == 31  # all 30 tokens, then [DONE]


def test_default_shutdown_aborts_inflight():
    with standin("--itl", "0.05") as (base, proc):
        result = {}

        def call():
            try:
                result["r"] = _post(base + "/v1/completions", {"prompt": "x", "max_tokens": 100, "stream": True})
            except Exception as e:  # the connection is dropped mid-stream
                result["e"] = e

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert proc.wait(timeout=5) == 0
    assert "e" in result or not result["r"][1].decode().endswith("data: [DONE]\n\n")


def test_fault_controls():
    with standin() as (base, proc):
        proc.send_signal(signal.SIGUSR2)  # hung engine: /health still fine, generation stalls
        time.sleep(0.2)
        assert urllib.request.urlopen(base + "/health", timeout=2).status == 200
        with pytest.raises(TimeoutError):
            _post(base + "/v1/completions", {"prompt": "x", "max_tokens": 1}, timeout=1)
        proc.send_signal(signal.SIGUSR1)  # hung /health
        time.sleep(0.2)
        with pytest.raises(TimeoutError):
            urllib.request.urlopen(base + "/health", timeout=1)
    with standin(env={"VLLM_KEEP_ALIVE_ON_ENGINE_DEATH": "1"}) as (base, proc):
        proc.send_signal(signal.SIGHUP)  # engine death
        time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/health", timeout=2)
        assert err.value.code == 503
        assert _post(base + "/v1/completions", {"prompt": "x"})[0] == 500


def test_llm_request_spans_over_otlp_grpc():
    grpc = pytest.importorskip("grpc")
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received = []

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - gRPC method name
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with standin("--otlp-traces-endpoint", f"http://127.0.0.1:{port}") as (base, proc):
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            req = urllib.request.Request(base + "/v1/completions", data=json.dumps(
                {"prompt": "a b", "max_tokens": 3, "temperature": 0.5, "top_p": 0.9}).encode(),
                headers={"content-type": "application/json",
                         "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
            urllib.request.urlopen(req).read()
            proc.send_signal(signal.SIGTERM)  # exit flushes the batch processor
            proc.wait(timeout=15)
    finally:
        server.stop(0)
    spans = [(rs.resource, s) for r in received for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 1
    resource, span = spans[0]
    assert span.name == "llm_request" and span.kind == 2  # SPAN_KIND_SERVER
    assert span.trace_id.hex() == trace_id and span.parent_span_id.hex() == "00f067aa0ba902b7"
    attrs = {a.key: a.value for a in span.attributes}
    for key in ("gen_ai.latency.time_to_first_token", "gen_ai.latency.e2e", "gen_ai.latency.time_in_queue",
                "gen_ai.latency.time_in_model_prefill", "gen_ai.latency.time_in_model_decode",
                "gen_ai.latency.time_in_model_inference"):
        assert attrs[key].double_value >= 0, key
    assert attrs["gen_ai.usage.prompt_tokens"].int_value == 2
    assert attrs["gen_ai.usage.completion_tokens"].int_value == 3
    assert attrs["gen_ai.request.id"].string_value.startswith("cmpl-")
    assert attrs["gen_ai.request.temperature"].double_value == 0.5
    assert attrs["gen_ai.request.max_tokens"].int_value == 3
    res = {a.key: a.value for a in resource.attributes}
    assert res["vllm.process_id"].int_value > 0
    e2e = attrs["gen_ai.latency.e2e"].double_value
    assert abs((span.end_time_unix_nano - span.start_time_unix_nano) / 1e9 - e2e) < 0.01


def _read_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no read_bytes in /proc/<pid>/io")


def test_read_file_is_read_from_the_device_on_every_request(tmp_path):
    # O_DIRECT: each request's bytes come from the block device, never the page cache,
    # so the storage layer accounts them every time (the file is read twice over).
    data = tmp_path / "weights.bin"
    data.write_bytes(os.urandom(1 << 20))
    with standin("--read-file", str(data), "--read-bytes", str(512 << 10)) as (base, proc):
        before = _read_bytes(proc.pid)
        for _ in range(4):
            assert _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 1})[0] == 200
        assert _read_bytes(proc.pid) - before == 4 * (512 << 10)


def test_read_file_smaller_than_a_block_is_refused(tmp_path):
    tiny = tmp_path / "tiny.bin"
    tiny.write_bytes(b"x" * 100)
    proc = subprocess.run([sys.executable, str(STANDIN), "--port", str(_free_port()), "--read-file", str(tiny),
                           "--read-bytes", "65536"], capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0 and "smaller than one --read-block" in proc.stderr
