"""Chaos scenario, issue 19 defect 1: memcg reclaim in another cgroup is never the
cause of a worker's request.

The real `infernode run` (eBPF reclaim program on, OTLP receiver on) and the vLLM
stand-in in an inference cgroup, serving streamed completions one after another.
Meanwhile a process in a separate v1 memory cgroup, limited to 48 MiB, reads a
192 MiB sparse file over and over: it reclaims its own page cache on every pass
(memcg reclaim), stalls of 10 ms and more among them, while the worker, whose
memory is unlimited, reclaims nothing. Before the fix those stalls had the subject
`node`, which concerned every request, and were named as the top cause of requests
at baseline latency. Precision is asserted: no request names reclaim, and the
reclaimer's stalls, counted by the agent, really happened during the requests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.harness.agent import Agent
from tests.harness.prometheus import free_port
from tests.integration.ebpf.conftest import limited_memory_cgroup
from tests.integration.tracing.chaos import (
    STANDIN,
    agent_config,
    cpu_cgroups,
    explanation,
    in_cgroup,
    post_stream,
    standin_env,
    wait_http,
    wait_program,
)

pytestmark = pytest.mark.integration

N = 12
TOKENS = 20


def _counter(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def memory_cgroup():
    with limited_memory_cgroup("chaos-mem") as d:
        yield d


def test_another_cgroups_reclaim_is_named_on_no_request(tmp_path, memory_cgroup):
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(192 << 20)  # reading holes fills the page cache without disk I/O
    http_port, grpc_port, vllm_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    with cpu_cgroups("worker", shares=1024) as (worker_cgroup,):
        config = agent_config([worker_cgroup], ("reclaim",), http_port, grpc_port)
        # Every stall of 0.1 ms or more becomes an event (the default, 10 ms, is rare on
        # a page-cache-only limit): many events, any of which the old rule would name.
        config["collectors"]["ebpf"]["reclaim_threshold"] = "100us"
        try:
            with Agent.start(tmp_path / "agent", config) as agent:
                wait_program(agent, "reclaim")
                worker = subprocess.Popen(
                    in_cgroup(worker_cgroup, sys.executable, STANDIN, "--host", "127.0.0.1", "--port", str(vllm_port),
                              "--otlp-traces-endpoint", f"http://127.0.0.1:{http_port}/v1/traces",
                              "--ttft", "0.05", "--itl", "0.02"),
                    env=standin_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(worker)
                wait_http(f"http://127.0.0.1:{vllm_port}/health", 20)
                time.sleep(1.2)  # one scope refresh: the worker's threads are in the map
                post_stream(vllm_port, uuid.uuid4().hex, TOKENS)  # warm-up

                labels = {"scope": "other", "kind": "memcg"}
                before = _counter(agent.metrics(), "infernode_reclaim_stalls_total", **labels)
                events_before = _counter(agent.metrics(), "infernode_events_added_total", kind="reclaim_stall")
                reclaimer = subprocess.Popen(
                    ["sh", "-c", f'echo $$ > {memory_cgroup / "tasks"} && '
                                 f'while :; do cat {sparse} > /dev/null; done'])
                procs.append(reclaimer)
                time.sleep(0.5)
                ids = [uuid.uuid4().hex for _ in range(N)]
                for t in ids:
                    post_stream(vllm_port, t, TOKENS)
                reclaimer.kill()
                reclaimer.wait()
                stalls = _counter(agent.metrics(), "infernode_reclaim_stalls_total", **labels) - before
                stall_s = _counter(agent.metrics(), "infernode_reclaim_stall_seconds_total", **labels)
                events = _counter(agent.metrics(), "infernode_events_added_total", kind="reclaim_stall") - events_before
                reqs = [explanation(agent, t) for t in ids]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()

    named = [r for r in reqs if any(c["kind"] == "reclaim_stall" for c in r["causes"] + r.get("evidence", []))]
    seen = [r for r in reqs if any(e["kind"] == "reclaim_stall" for e in r["events"])]
    report = {"reclaim_stalls_elsewhere": stalls, "reclaim_stall_seconds_elsewhere": stall_s,
              "reclaim_stall_events": events,
              "requests": N, "naming_reclaim": len(named), "with_reclaim_events": len(seen),
              "verdicts": [r["verdict"] for r in reqs],
              "e2e": [r["latency_seconds"]["e2e"] for r in reqs]}
    print(json.dumps(report, indent=1))
    # The reclaimer really stalled, during the requests, and its stalls are events...
    assert stalls >= N and events >= N, report
    # ...and no request was told about it: precision 1 on this fault.
    assert named == [] and seen == [], report
