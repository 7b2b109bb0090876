"""The engine's own causes, end to end: the real agent receives the OTLP spans of
the vLLM stand-in running as a small continuous-batching engine (test double,
`--scheduler batched`), and each test checks `infernode explain` against what
the engine really did: the spans' own queue and decode times, a run without the
interfering load, and the double's truth log of which requests it preempted.

One agent and one engine for the module (the unloaded baseline is learned once,
from requests that decode alone); each test sends its own requests after the
previous test's have finished, so none overlaps another's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from tests.harness.agent import Agent, only_collectors
from tests.harness.prometheus import free_port
from tests.integration.tracing.chaos import STANDIN, explanation, standin_env, wait_http

pytestmark = pytest.mark.integration

ENGINE_KINDS = {"queueing", "kv_cache_pressure", "preemption", "batch_interference", "long_prompt"}
STEP = ["--scheduler", "batched", "--step-time", "0.01", "--step-time-per-seq", "0.0005",
        "--step-time-per-prefill-token", "0.00004", "--max-num-batched-tokens", "2048"]


def post(port: int, prompt_tokens: int, max_tokens: int) -> tuple[str, str]:
    """One completion; (trace id, vLLM request id)."""
    trace_id = uuid.uuid4().hex
    body = json.dumps({"model": "standin/tiny-model", "prompt": " ".join(["w"] * prompt_tokens),
                       "max_tokens": max_tokens}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body, headers={
        "Content-Type": "application/json", "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return trace_id, json.loads(resp.read())["id"]


def concurrently(port: int, n: int, prompt_tokens: int, max_tokens: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    lock = threading.Lock()

    def one() -> None:
        r = post(port, prompt_tokens, max_tokens)
        with lock:
            out.append(r)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def kinds(req: dict) -> set[str]:
    return {c["kind"] for c in req["causes"]}


def seconds(req: dict, kind: str) -> float:
    return sum(c["explained_seconds"] for c in req["causes"] if c["kind"] == kind)


class Engine:
    def __init__(self, tmp, agent_http: int, name: str, *args: str) -> None:
        self.port = free_port()
        self.truth = tmp / f"{name}.truth.jsonl"
        env = {**standin_env(), "OTEL_SERVICE_NAME": name}
        self.proc = subprocess.Popen(
            [sys.executable, STANDIN, "--host", "127.0.0.1", "--port", str(self.port),
             "--otlp-traces-endpoint", f"http://127.0.0.1:{agent_http}/v1/traces", "--truth-log", str(self.truth),
             *STEP, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/health", 20)

    def truths(self) -> dict[str, dict]:
        return {d["request_id"]: d for d in map(json.loads, self.truth.read_text().splitlines())}

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine")
    http_port, grpc_port = free_port(), free_port()
    config = {
        "collectors": only_collectors(),
        "otlp": {"http_listen": f"127.0.0.1:{http_port}", "grpc_listen": f"127.0.0.1:{grpc_port}"},
        # Settle after 1 s: the stand-in's spans arrive within the drop-in's 500 ms batch delay.
        "explain": {"engine": {"settle": "1s", "baseline_min_samples": 10}},
    }
    with Agent.start(tmp / "agent", config) as agent:
        engine = Engine(tmp, http_port, "vllm-a", "--max-num-seqs", "4")
        try:
            # Requests that decode alone: the unloaded pace the agent learns.
            for _ in range(14):
                post(engine.port, 10, 20)
            time.sleep(1.5)
            yield agent, engine, tmp, http_port
        finally:
            engine.stop()


def test_a_burst_above_the_batch_limit_names_queueing_for_the_requests_that_queued(node):
    agent, engine, _, _ = node
    before = [post(engine.port, 10, 20)[0] for _ in range(3)]
    burst = concurrently(engine.port, 16, 10, 20)
    time.sleep(1.0)
    truth = engine.truths()
    queued = [(t, truth[rid]) for t, rid in burst if truth[rid]["queue"] > 0.1]
    assert len(queued) >= 8, truth  # 16 requests through 4 slots: three waves wait
    for t, true in queued:
        req = explanation(agent, t)
        assert "queueing" in kinds(req), req["verdict"]
        assert abs(seconds(req, "queueing") - true["queue"]) <= 0.2 * true["queue"], (req["causes"], true)
        assert "running requests" in req["verdict"] or any("running requests" in c["text"] for c in req["causes"])
    for t in before:
        assert kinds(explanation(agent, t)) & ENGINE_KINDS == set()


def test_long_prompts_prefilled_during_short_decodes_are_batch_interference(node):
    agent, engine, _, _ = node
    quiet = [post(engine.port, 10, 40)[0] for _ in range(5)]
    loud: list[str] = []
    stop = threading.Event()

    def long_prompts() -> None:
        while not stop.is_set():
            post(engine.port, 6000, 2)

    for _ in range(5):
        stop.clear()
        t = threading.Thread(target=long_prompts)
        t.start()
        time.sleep(0.05)
        loud.append(post(engine.port, 10, 40)[0])
        stop.set()
        t.join()
    time.sleep(2.0)  # every neighbour's span in
    quiet_r = [explanation(agent, t) for t in quiet]
    loud_r = [explanation(agent, t) for t in loud]
    base = statistics.median(r["latency_seconds"]["decode"] for r in quiet_r)
    report = {"base": base, "loud": [(r["latency_seconds"]["decode"], seconds(r, "batch_interference"))
                                      for r in loud_r]}
    extra = [r["latency_seconds"]["decode"] - base for r in loud_r]
    explained = [seconds(r, "batch_interference") for r in loud_r]
    assert sum(extra) > 5 * 0.3 * base, report  # the long prompts really slowed the decodes
    for r in loud_r:
        c = next((c for c in r["causes"] if c["kind"] == "batch_interference"), None)
        assert c is not None, (r["verdict"], r["causes"], r["evidence"], report)
        assert "prefilled during it" in c["text"] and c["text"].endswith("(estimated)"), c["text"]
    assert 0.7 * sum(extra) <= sum(explained) <= 1.3 * sum(extra), report
    for r in quiet_r:
        assert kinds(r) & ENGINE_KINDS == set(), r["verdict"]


def test_a_kv_budget_too_small_for_the_load_names_preemption_for_the_preempted(node):
    agent, _, tmp, http_port = node
    # 40 blocks of 16 tokens; twelve requests growing to 110 tokens need 84.
    small = Engine(tmp, http_port, "vllm-small", "--max-num-seqs", "12", "--num-gpu-blocks-override", "40")
    try:
        done = concurrently(small.port, 12, 10, 100)
        time.sleep(1.5)
        truth = small.truths()
    finally:
        small.stop()
    preempted = [t for t, rid in done if truth[rid]["preemptions"] > 0]
    kept = [t for t, rid in done if truth[rid]["preemptions"] == 0]
    assert preempted and kept, truth
    named = [t for t in preempted if "preemption" in kinds(explanation(agent, t))]
    report = [(truth[rid], explanation(agent, t)["causes"]) for t, rid in done]
    assert len(named) >= 0.7 * len(preempted), (len(named), len(preempted), report)
    for t in kept:
        assert "preemption" not in kinds(explanation(agent, t))


def test_a_request_slow_by_its_own_long_prompt_names_long_prompt_and_blames_no_one(node):
    agent, _, tmp, http_port = node
    # A worker of its own: what is typical for it is what it served, not another test's long prompts.
    engine = Engine(tmp, http_port, "vllm-b", "--max-num-seqs", "4")
    try:
        for _ in range(10):
            post(engine.port, 10, 20)
        trace, _ = post(engine.port, 3000, 5)
        after = post(engine.port, 10, 20)[0]
        time.sleep(1.0)
    finally:
        engine.stop()
    req = explanation(agent, trace)
    assert kinds(req) & ENGINE_KINDS == {"long_prompt"}, req["verdict"]
    (c,) = [c for c in req["causes"] if c["kind"] == "long_prompt"]
    assert c["detail"]["prompt_tokens"] == 3000 and "3,000-token prompt" in c["text"]
    assert 0.5 * req["latency_seconds"]["prefill"] <= c["explained_seconds"] <= req["latency_seconds"]["prefill"]
    assert kinds(explanation(agent, after)) & ENGINE_KINDS == set()
