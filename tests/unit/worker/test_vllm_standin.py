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
                raise RuntimeError(proc.communicate()[0].decode()) from None
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


def _final_choice(raw: bytes) -> dict:
    chunks = [json.loads(e) for e in _events(raw)[:-1]]
    return [c for c in chunks if c["choices"]][-1]["choices"][0]


def test_sigterm_drains_inflight_and_aborts_new_requests():
    # vLLM 0.33 (vllm-0.33.md items 28-29): while draining, HTTP keeps accepting and
    # /health stays 200; a new request comes back 200 with finish_reason "abort" and
    # no text (EngineCore's _reject_add_in_shutdown), not a 503.
    with standin("--shutdown-timeout", "10", "--itl", "0.05") as (base, proc):
        result = {}
        t = threading.Thread(target=lambda: result.update(r=_post(base + "/v1/completions",
                                                                   {"prompt": "x", "max_tokens": 30,
                                                                    "stream": True})))
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        status, body = _post(base + "/v1/completions", {"prompt": "y", "max_tokens": 5})
        assert status == 200
        choice = json.loads(body)["choices"][0]
        assert choice["finish_reason"] == "abort" and choice["text"] == ""
        status, raw = _post(base + "/v1/chat/completions", {"messages": [{"role": "user", "content": "z"}],
                                                            "max_tokens": 5, "stream": True})
        assert status == 200 and _final_choice(raw)["finish_reason"] == "abort"
        assert _final_choice(raw)["delta"]["content"] == ""
        assert urllib.request.urlopen(base + "/health", timeout=2).status == 200  # vLLM keeps 200 while draining
        t.join(10)
        assert proc.wait(timeout=10) == 0
    _, raw = result["r"]
    assert len(_events(raw)) == 31  # all 30 tokens, then [DONE]
    assert _final_choice(raw)["finish_reason"] == "length"


def test_drain_past_its_timeout_fails_the_rest_as_engine_dead():
    # At --shutdown-timeout the API server kills the EngineCore tree: what still runs
    # fails as engine-dead (an error event in a stream), not as a clean finish.
    with standin("--shutdown-timeout", "1", "--itl", "0.05") as (base, proc):
        result = {}
        t = threading.Thread(target=lambda: result.update(r=_post(base + "/v1/completions",
                                                                   {"prompt": "x", "max_tokens": 200,
                                                                    "stream": True}, timeout=20)))
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        t.join(15)
        assert proc.wait(timeout=10) == 0
    events = _events(result["r"][1])
    assert json.loads(events[-2])["error"]["code"] == 500
    assert 0 < len(events) - 2 < 200


def test_default_shutdown_aborts_inflight_with_an_abort_chunk():
    # Timeout 0: abort outputs, so the stream ends normally with finish_reason
    # "abort" and [DONE] (item 30), not a dropped connection.
    with standin("--itl", "0.05") as (base, proc):
        result = {}
        t = threading.Thread(target=lambda: result.update(r=_post(base + "/v1/completions",
                                                                   {"prompt": "x", "max_tokens": 100,
                                                                    "stream": True})))
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert proc.wait(timeout=5) == 0
    status, raw = result["r"]
    assert status == 200
    last = _final_choice(raw)
    assert last["finish_reason"] == "abort" and last["text"] == ""
    assert len(_events(raw)) < 100


def test_shutdown_timeout_is_an_int_as_in_vllm():
    proc = subprocess.run([sys.executable, str(STANDIN), "--port", str(_free_port()), "--shutdown-timeout", "2.5"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "invalid int value: '2.5'" in proc.stderr


def test_version_and_http_server_metrics():
    with standin("--report-version", "0.17.1") as (base, _):
        assert json.loads(urllib.request.urlopen(base + "/version", timeout=2).read()) == {"version": "0.17.1"}
        assert _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 1})[0] == 200
        assert _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 1})[0] == 200
        text = urllib.request.urlopen(base + "/metrics", timeout=2).read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    total = {tuple(sorted(s.labels.items())): s.value for s in fams["http_requests"].samples
             if s.name == "http_requests_total"}
    assert total[(("handler", "/v1/completions"), ("method", "POST"), ("status", "2xx"))] == 2
    assert not any(dict(k)["handler"] in ("/health", "/metrics") for k in total)
    buckets = [s for s in fams["http_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["handler"] == "/v1/completions"]
    assert [s.labels["le"] for s in buckets] == ["0.1", "0.5", "1.0", "+Inf"]


def test_disable_log_stats_keeps_the_http_metrics():
    with standin("--disable-log-stats") as (base, _):
        assert _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 1})[0] == 200
        text = urllib.request.urlopen(base + "/metrics", timeout=2).read().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "http_requests" in names and not any(n.startswith("vllm:") for n in names)


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


@pytest.fixture
def otlp():
    """A real OTLP/gRPC TraceService on loopback collecting what the stand-in sends."""
    grpc = pytest.importorskip("grpc")
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received = []

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - gRPC method name
            received.append((time.monotonic(), request))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def spans(name: str | None = None) -> list:
        out = [(t, rs.resource, sp) for t, r in list(received) for rs in r.resource_spans
               for ss in rs.scope_spans for sp in ss.spans]
        return [x for x in out if name is None or x[2].name == name]

    try:
        yield f"http://127.0.0.1:{port}", spans
    finally:
        server.stop(0)


def _attrs(span) -> dict:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


FAST_BSP = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


def test_llm_request_spans_over_otlp_grpc(otlp):
    endpoint, spans = otlp
    with standin("--otlp-traces-endpoint", endpoint) as (base, proc):
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        req = urllib.request.Request(base + "/v1/completions", data=json.dumps(
            {"prompt": "a b", "max_tokens": 3, "temperature": 0.5, "top_p": 0.9, "n": 0}).encode(),
            headers={"content-type": "application/json",
                     "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        urllib.request.urlopen(req).read()
        proc.send_signal(signal.SIGTERM)  # exit flushes the batch processor
        proc.wait(timeout=15)
    (_, resource, span), = spans("llm_request")
    assert span.kind == 2  # SPAN_KIND_SERVER
    assert span.trace_id.hex() == trace_id and span.parent_span_id.hex() == "00f067aa0ba902b7"
    attrs = _attrs(span)
    for key in ("gen_ai.latency.time_to_first_token", "gen_ai.latency.e2e", "gen_ai.latency.time_in_queue",
                "gen_ai.latency.time_in_model_prefill", "gen_ai.latency.time_in_model_decode",
                "gen_ai.latency.time_in_model_inference"):
        assert attrs[key] >= 0, key
    assert attrs["gen_ai.usage.prompt_tokens"] == 2 and attrs["gen_ai.usage.completion_tokens"] == 3
    assert attrs["gen_ai.request.id"].startswith("cmpl-")
    assert attrs["gen_ai.request.temperature"] == 0.5 and attrs["gen_ai.request.max_tokens"] == 3
    assert "gen_ai.request.n" not in attrs  # vLLM sets these only when truthy
    assert "gen_ai.response.model" not in attrs and "gen_ai.request.model" not in attrs  # vLLM sets neither
    res = _attrs(resource)
    assert res["vllm.process_id"] == str(proc.pid)  # a string, as vLLM's str(os.getpid())
    e2e = attrs["gen_ai.latency.e2e"]
    assert abs((span.end_time_unix_nano - span.start_time_unix_nano) / 1e9 - e2e) < 0.01


def test_startup_phases_are_spans_as_they_end(otlp):
    endpoint, spans = otlp
    t0 = time.monotonic()
    with standin("--otlp-traces-endpoint", endpoint, "--startup-phase", "Load weights=0.6",
                 "--startup-phase", "Capture model=0.6", env=FAST_BSP) as (base, proc):
        deadline = time.monotonic() + 5
        while not spans("Overall Loading") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert time.monotonic() - t0 >= 1.2
    got = {sp.name: (t, (sp.end_time_unix_nano - sp.start_time_unix_nano) / 1e9) for t, _, sp in spans()}
    assert set(got) == {"Load weights", "Capture model", "Overall Loading"}, got
    assert got["Load weights"][1] == pytest.approx(0.6, abs=0.1)
    assert got["Overall Loading"][1] == pytest.approx(1.2, abs=0.2)
    # Each phase is sent as it ends (the next one takes 0.6 s), not all at the end of the load.
    assert got["Overall Loading"][0] - got["Load weights"][0] >= 0.3


def test_batch_processor_keeps_the_sdk_default_delay(otlp):
    # vLLM uses BatchSpanProcessor's defaults (5 s); only OTEL_BSP_* changes them.
    endpoint, spans = otlp
    with standin("--otlp-traces-endpoint", endpoint, "--startup-phase", "Load weights=0") as (base, proc):
        sent = time.monotonic()
        _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 1})
        time.sleep(2.0)
        assert spans("llm_request") == []
    with standin("--otlp-traces-endpoint", endpoint, "--startup-phase", "Load weights=0", env=FAST_BSP) as (base, _):
        sent = time.monotonic()
        _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 1})
        deadline = sent + 3
        while len(spans("llm_request")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        arrived = [t for t, _, _ in spans("llm_request") if t > sent]
    assert arrived and arrived[0] - sent < 1.0


def test_drain_sends_spans_for_aborted_requests_with_vllms_bogus_timings(otlp):
    # vllm-0.33.md 2.4: a request refused while draining gets an abort output and an
    # llm_request span; never scheduled, its prefill and inference read EngineCore's
    # monotonic clock (about the uptime) and it generated no token.
    endpoint, spans = otlp
    with standin("--otlp-traces-endpoint", endpoint, "--shutdown-timeout", "5", "--itl", "0.05",
                 env=FAST_BSP) as (base, proc):
        t = threading.Thread(target=_post, args=(base + "/v1/completions", {"prompt": "x", "max_tokens": 20}))
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        assert json.loads(_post(base + "/v1/completions", {"prompt": "y"})[1])["choices"][0]["finish_reason"] == "abort"
        t.join(10)
        proc.wait(timeout=10)
    by_tokens = {_attrs(sp)["gen_ai.usage.completion_tokens"]: _attrs(sp) for _, _, sp in spans("llm_request")}
    assert set(by_tokens) == {0, 20}
    aborted = by_tokens[0]
    uptime = time.monotonic()
    assert aborted["gen_ai.latency.time_in_model_prefill"] == pytest.approx(uptime, rel=0.01)
    assert aborted["gen_ai.latency.time_in_model_inference"] > aborted["gen_ai.latency.e2e"]
    assert by_tokens[20]["gen_ai.latency.time_in_model_prefill"] < by_tokens[20]["gen_ai.latency.e2e"]


def test_disable_log_stats_with_tracing_kills_the_engine_at_the_first_finished_request(otlp):
    # vllm-0.33.md item 15: do_tracing asserts on the stats the flag turns off.
    endpoint, _ = otlp
    with standin("--otlp-traces-endpoint", endpoint, "--disable-log-stats") as (base, proc):
        assert _post(base + "/v1/completions", {"prompt": "a", "max_tokens": 2})[0] == 500
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/health", timeout=2)
        assert err.value.code == 503
        assert proc.wait(timeout=10) == 0  # vLLM's watchdog ends the server within 5 s


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


def _metric(base: str, name: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def _truth(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _concurrently(base: str, n: int, prompt: int, max_tokens: int) -> None:
    body = {"model": "org/model", "prompt": " ".join(["w"] * prompt), "max_tokens": max_tokens}
    with futures.ThreadPoolExecutor(n) as pool:
        assert all(s == 200 for s, _ in pool.map(lambda _: _post(base + "/v1/completions", body, 30), range(n)))


def test_batched_engine_queues_beyond_max_num_seqs_and_steps_the_batch_together(tmp_path):
    truth = tmp_path / "truth.jsonl"
    with standin("--scheduler", "batched", "--max-num-seqs", "2", "--step-time", "0.01",
                 "--truth-log", str(truth)) as (base, _):
        _concurrently(base, 6, 4, 10)
        rows = _truth(truth)
        assert _metric(base, "vllm:num_requests_running") == 0 and _metric(base, "vllm:num_requests_waiting") == 0
    assert len(rows) == 6
    queued = sorted(r["queue"] for r in rows)
    # Two at a time: two waves wait a whole wave's time or more, one wave does not wait.
    assert queued[1] < 0.05 and queued[2] > 0.08 and queued[4] > 2 * 0.08, queued
    # Each step advances every running request one token: nine steps of about 10 ms.
    for r in rows:
        assert 0.09 <= r["decode"] < 0.25, r
    assert all(r["preemptions"] == 0 for r in rows)


def test_batched_engine_preempts_the_newest_when_the_kv_blocks_run_out_and_counts_it(tmp_path):
    truth = tmp_path / "truth.jsonl"
    # 4 blocks of 4 tokens: two requests growing to 12 tokens need 6.
    with standin("--scheduler", "batched", "--max-num-seqs", "2", "--step-time", "0.005",
                 "--num-gpu-blocks-override", "4", "--block-size", "4", "--truth-log", str(truth)) as (base, _):
        _concurrently(base, 2, 3, 10)
        rows = _truth(truth)
        counted = _metric(base, "vllm:num_preemptions_total")
    assert counted == sum(r["preemptions"] for r in rows) > 0
    # The preempted one was recomputed after the other finished: its decode holds the wait.
    slow, fast = sorted(rows, key=lambda r: -r["preemptions"])
    assert slow["preemptions"] > 0 and fast["preemptions"] == 0
    assert slow["decode"] > fast["decode"] * 1.3, rows


def test_batched_engine_chunks_a_long_prefill_within_the_token_budget(tmp_path):
    truth = tmp_path / "truth.jsonl"
    with standin("--scheduler", "batched", "--step-time", "0.005", "--step-time-per-prefill-token", "0.0001",
                 "--max-num-batched-tokens", "100", "--truth-log", str(truth)) as (base, _):
        assert _post(base + "/v1/completions", {"prompt": " ".join(["w"] * 400), "max_tokens": 2})[0] == 200
        (row,) = _truth(truth)
    # Four chunks of 100 tokens: 4 x (5 ms + 10 ms), not one step of 45 ms.
    assert 0.055 <= row["prefill"] < 0.2, row


@pytest.mark.parametrize("flag", ["--max-num-seqs", "--max-num-batched-tokens", "--num-gpu-blocks-override",
                                  "--block-size"])
def test_batched_engine_refuses_a_limit_below_one(flag):
    out = subprocess.run([sys.executable, str(STANDIN), "--scheduler", "batched", flag, "0"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 2 and "must be >= 1" in out.stderr
