"""Chaos scenario (1), issue 8: a CPU hog started mid-run on the worker's CPU.

The real `infernode run` (eBPF run-queue program on, OTLP receiver on) and the vLLM
stand-in, placed in an inference cgroup (v1 cpu hierarchy on this hybrid host) and
pinned to one CPU, serving streamed completions one after another; the stand-in burns
a fixed amount of CPU per token (vLLM's host-side decode loop is CPU-hungry) and
exports its `llm_request` spans to the agent. Phase A: no hog. Phase B: a busy loop
pinned to the same CPU. The agent's own explanations (GET /debug/explain) must name
run-queue contention for every phase-B request, and for phase A nothing beyond the
host's background: on this shared 2-core machine other engineers' jobs run on the same
CPU, and the stand-in's own threads (HTTP, span export) share its one CPU, so a request
without the hog still waits on the run queue a little (15-50 ms of a ~0.54 s request
measured), and the agent rightly says so. The worker and the hog run in sibling cpu
cgroups of equal weight, ten times everyone else's, so the other users' jobs barely
reach the measurement while the hog competes with the worker as an equal. "No cause" for phase A
is therefore checked as: its run-queue time is below half of the smallest phase-B one,
and its median below a fifth of phase B's.

The worker is quiet, one request at a time, so its slow requests are the hog's
doing, never the engine's: no engine cause (queueing, batch interference, ...) may
be named for any request while the run-queue cause is, though the agent has learned
the worker's unloaded pace (its baseline needs only five requests here) and could
name one. The stand-in paces each request itself here (`--scheduler paced`): in its
batched mode the HTTP thread and the step thread each wait for the CPU at every
token, and the run-queue sums (which add every thread's waits) went beyond this
test's ±30% (one trial: 0.28 s explained of 0.20 s extra).

Explained vs. measured is checked per request (within ±30%) and on the phase sum
(within ±20%). A request's measured extra is its e2e minus the phase-A median e2e; its
explained extra is its run-queue time minus the phase-A median run-queue time, because
the baseline already contains the host's background waits. Per request works here
because the agent's sums track the waits actually suffered, the other users' included,
so noise that hits a request shows up on both sides. The explained side runs about
10-20% high: the sums include waits of the stand-in's other threads (HTTP, span
export) that overlapped the request without delaying it (docs/tracing.md, Limits).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

import pytest

from tests.harness.agent import Agent
from tests.harness.prometheus import free_port
from tests.integration.tracing.chaos import (
    STANDIN,
    agent_config,
    cause_s,
    cpu_cgroups,
    explanation,
    in_cgroup,
    post_stream,
    standin_env,
    wait_http,
    wait_program,
)

pytestmark = pytest.mark.integration

CPU = os.cpu_count() - 1
N = 8  # requests per phase
TOKENS = 25
CPU_PER_TOKEN = 0.01
WEIGHT = 10240  # cpu.shares; 1024 is everyone else's


def _runqueue_s(req: dict) -> float:
    return cause_s(req, "runqueue_wait")


@pytest.fixture
def cgroups():
    """(worker, hog): sibling v1 cpu cgroups of equal, high weight. The hog competes
    with the worker as an equal; both outweigh the other users of this shared machine
    tenfold, so their jobs barely touch the measurement."""
    with cpu_cgroups("worker", "hog", shares=WEIGHT) as made:
        yield made


def test_cpu_hog_on_the_workers_cpu_is_named_for_the_requests_it_slowed(tmp_path, cgroups):
    worker_cgroup, hog_cgroup = cgroups
    http_port, grpc_port, vllm_port = free_port(), free_port(), free_port()
    config = agent_config([worker_cgroup], ("runqueue",), http_port, grpc_port)
    config["explain"] = {"engine": {"baseline_min_samples": 5, "settle": "0.5s"}}
    procs: list[subprocess.Popen] = []
    try:
        with Agent.start(tmp_path / "agent", config) as agent:
            wait_program(agent, "runqueue")
            env = standin_env()
            worker = subprocess.Popen(
                in_cgroup(worker_cgroup, "taskset", "-c", str(CPU), sys.executable, STANDIN,
                           "--host", "127.0.0.1", "--port", str(vllm_port),
                           "--otlp-traces-endpoint", f"http://127.0.0.1:{http_port}/v1/traces",
                           "--ttft", "0.02", "--itl", "0.005", "--cpu-per-token", str(CPU_PER_TOKEN)),
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(worker)
            wait_http(f"http://127.0.0.1:{vllm_port}/health", 20)
            time.sleep(1.2)  # one scope refresh after start-up: the worker's threads are in the map
            post_stream(vllm_port, uuid.uuid4().hex, TOKENS)  # warm-up (imports, first connection)

            quiet_ids = [uuid.uuid4().hex for _ in range(N)]
            quiet_e2e = [post_stream(vllm_port, t, TOKENS) for t in quiet_ids]

            hog = subprocess.Popen(in_cgroup(hog_cgroup, "taskset", "-c", str(CPU), sys.executable, "-c",
                                              "while True: pass"))
            procs.append(hog)
            time.sleep(0.3)
            loud_ids = [uuid.uuid4().hex for _ in range(N)]
            loud_e2e = [post_stream(vllm_port, t, TOKENS) for t in loud_ids]
            hog.kill()
            hog.wait()

            quiet = [explanation(agent, t) for t in quiet_ids]
            loud = [explanation(agent, t) for t in loud_ids]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()

    # The agent's e2e is the stand-in's own (span attributes), not the client's.
    base = statistics.median(r["latency_seconds"]["e2e"] for r in quiet)
    base_rq = statistics.median(_runqueue_s(r) for r in quiet)  # the host's own background waits
    extra = [r["latency_seconds"]["e2e"] - base for r in loud]
    explained = [_runqueue_s(r) - base_rq for r in loud]
    report = {"baseline_e2e": base, "baseline_runqueue": base_rq,
              "quiet_e2e": [r["latency_seconds"]["e2e"] for r in quiet],
              "quiet_runqueue": [_runqueue_s(r) for r in quiet],
              "loud_e2e": [r["latency_seconds"]["e2e"] for r in loud], "extra": extra, "explained": explained,
              "ratio": [e / x for e, x in zip(explained, extra, strict=False)], "client_quiet": quiet_e2e, "client_loud": loud_e2e}
    print(json.dumps(report, indent=1))

    # Before the hog: only the host's background waits, far below any hog-time request.
    loud_rq = [_runqueue_s(r) for r in loud]
    for r in quiet:
        assert _runqueue_s(r) < 0.5 * min(loud_rq), (r["verdict"], report)
    assert base_rq < 0.2 * statistics.median(loud_rq), report
    assert sum(extra) > 0.2 * N * base, report  # the hog really slowed the worker
    engine_kinds = {"queueing", "kv_cache_pressure", "preemption", "batch_interference", "long_prompt"}
    for r in quiet + loud:
        assert not engine_kinds & {c["kind"] for c in r["causes"] + r["evidence"]}, (r["verdict"], report)
    for r, x, e in zip(loud, extra, explained, strict=False):
        assert r["causes"] and r["causes"][0]["kind"] == "runqueue_wait", (r["verdict"], report)
        assert f"on CPU {CPU}" in r["verdict"], r["verdict"]
        assert 0.7 * x <= e <= 1.3 * x, report
    assert 0.8 * sum(extra) <= sum(explained) <= 1.2 * sum(extra), report
