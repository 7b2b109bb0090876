"""Chaos scenario, issue 19 defect 3: a lossy path to the client is outside the
span, and the agent says how much.

The real `infernode run` (eBPF tcp_retransmit program, OTLP receiver) and the vLLM
stand-in (a test double) listening on this host's end of a veth pair; its client
sits in a network namespace at the other end and streams completions one after
another. For the lossy requests the client drops every segment from the worker
(nftables, in its namespace) for 150 ms from three tokens before the stream's end:
the last tokens and [DONE] are lost with nothing after them to show it, so the
worker's kernel probes, times out (200 ms at least) and retransmits, and the client
gets its last bytes later than the span ends. (A blackout mid-stream recovers by
fast retransmit before the stream ends: the client is not delayed, and the test's
first draft saw exactly that.) The span's e2e does not move (the server had handed every
token to its socket): the test checks that the explanation names the retransmits
as a client-side delay outside the span, that its measured part (the last
retransmit after the span's end) matches what the client really waited beyond the
span, and that the clean requests name nothing.
"""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import subprocess
import sys
import uuid

import pytest

from tests.harness.agent import Agent
from tests.harness.netns import host_link
from tests.harness.prometheus import free_port
from tests.integration.tracing.chaos import (
    STANDIN,
    agent_config,
    cpu_cgroups,
    explanation,
    in_cgroup,
    standin_env,
    wait_http,
    wait_program,
)

pytestmark = pytest.mark.integration

N = 4
TOKENS = 30
BLACKOUT_S = 0.15

# Runs in the client's namespace: one streamed completion per line of stdin
# ("TRACE lossy|clean"), answering with its wall time to [DONE].
CLIENT = r"""
import json, socket, subprocess, sys, time
host, port, tokens, blackout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
nft = lambda *a: subprocess.run(["nft", *a], check=True)
nft("add", "table", "inet", "loss")
nft("add", "chain", "inet", "loss", "input", "{ type filter hook input priority 0 ; }")
for line in sys.stdin:
    trace, mode = line.split()
    body = json.dumps({"model": "m", "prompt": "hello", "max_tokens": tokens, "stream": True}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"traceparent: 00-{trace}-{'1' * 16}-01\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    t0 = time.monotonic()
    s = socket.create_connection((host, port))
    s.sendall(head.encode() + body)
    data, dropped = b"", False
    while b"data: [DONE]" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if mode == "lossy" and not dropped and data.count(b"data: ") >= tokens - 3:
            dropped = True
            nft("add", "rule", "inet", "loss", "input", "tcp", "sport", str(port), "drop")
            time.sleep(blackout)
            nft("flush", "chain", "inet", "loss", "input")
    wall = time.monotonic() - t0
    s.close()
    print(json.dumps({"trace": trace, "mode": mode, "client_seconds": wall, "done": b"data: [DONE]" in data}),
          flush=True)
"""


def test_a_lossy_path_to_the_client_is_named_outside_the_span(tmp_path):
    http_port, grpc_port, vllm_port = free_port(), free_port(), free_port()
    with contextlib.ExitStack() as stack:
        (worker_cg,) = stack.enter_context(cpu_cgroups("worker", shares=1024))
        ns, host_addr, _ = stack.enter_context(host_link("loss", "10.251"))
        agent = stack.enter_context(Agent.start(tmp_path / "agent", agent_config(
            [worker_cg], ("tcp_retransmit",), http_port, grpc_port)))
        wait_program(agent, "tcp_retransmit")
        worker = subprocess.Popen(
            in_cgroup(worker_cg, sys.executable, STANDIN, "--host", host_addr, "--port", str(vllm_port),
                      "--otlp-traces-endpoint", f"http://127.0.0.1:{http_port}/v1/traces",
                      "--ttft", "0.02", "--itl", "0.01"),
            env=standin_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(lambda: (worker.send_signal(signal.SIGKILL), worker.wait()))
        wait_http(f"http://{host_addr}:{vllm_port}/health", 20)
        plan = [(uuid.uuid4().hex, "clean" if i < N or i % 2 else "lossy") for i in range(3 * N)]
        client = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, host_addr, str(vllm_port), str(TOKENS),
             str(BLACKOUT_S)],
            input="".join(f"{t} {m}\n" for t, m in plan), capture_output=True, text=True, timeout=120)
        assert client.returncode == 0, client.stderr
        seen = [json.loads(line) for line in client.stdout.splitlines()]
        assert len(seen) == len(plan) and all(s["done"] for s in seen), seen
        reqs = {s["trace"]: explanation(agent, s["trace"]) for s in seen}

    def beyond(s: dict) -> float:  # what the client waited past the span's e2e
        return s["client_seconds"] - reqs[s["trace"]]["latency_seconds"]["e2e"]

    clean = [s for s in seen if s["mode"] == "clean"]
    lossy = [s for s in seen if s["mode"] == "lossy"]
    overhead = statistics.median(beyond(s) for s in clean)  # connection set-up, HTTP framing
    rows = []
    for s in lossy:
        d = reqs[s["trace"]]["client_delay"]
        rows.append({"client_extra": round(beyond(s) - overhead, 4), "span_e2e": reqs[s["trace"]]["latency_seconds"]["e2e"],
                     "after_span": d and d["after_span_seconds"], "stall_estimate": d and d["estimated_seconds"],
                     "timeouts": d and d["timeouts"], "fast": d and d["fast_or_probe"], "verdict": reqs[s["trace"]]["verdict"]})
    report = {"overhead": overhead, "lossy": rows,
              "clean_client_delay": [reqs[s["trace"]]["client_delay"] for s in clean]}
    print(json.dumps(report, indent=1))
    # The span did not see the loss: lossy spans are as long as clean ones.
    assert statistics.median(r["span_e2e"] for r in rows) < 1.2 * statistics.median(
        reqs[s["trace"]]["latency_seconds"]["e2e"] for s in clean), report
    for r in rows:
        assert r["client_extra"] > BLACKOUT_S / 2, report  # the blackout really delayed the client
        assert r["after_span"] is not None and r["timeouts"] >= 1, report
        assert r["verdict"].startswith("TCP retransmits to its client"), report
    # What the explanation measured after the span is what the client waited beyond it.
    measured, real = sum(r["after_span"] for r in rows), sum(r["client_extra"] for r in rows)
    assert 0.7 * real <= measured <= 1.3 * real, report
    # Precision: the clean requests, before and between the lossy ones, name nothing. A
    # clean one right before a lossy one sees the next request's retransmits after its
    # span, while that request was in flight: listed as not known to be its own.
    for s in clean:
        d = reqs[s["trace"]]["client_delay"]
        assert d is None or not d["attributed"], report
        assert reqs[s["trace"]]["verdict"] == "no known cause", report
