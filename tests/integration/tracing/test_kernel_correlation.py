"""Real run-queue waits, recorded by the real eBPF programs, explain a request
that overlapped them, by the time they took; a request before them has no cause.

The waits are made exactly (tests/integration/ebpf/loads.py timed_wait: a thread
woken onto a CPU that a SCHED_FIFO spinner holds for MS), so the explained time
can be checked against what the kernel was made to do.
"""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.events import Event
from agent.paths import Paths
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings
from tests.unit.tracing.spanfactory import request

pytestmark = pytest.mark.integration

LOADS = str(Path(__file__).parents[1] / "ebpf" / "loads.py")
CPU = os.cpu_count() - 1
N, MS = 5, 20


def _waits(store, tid: int, since: int) -> list[Event]:
    return [e for e in store.query(since, time.time_ns(), kinds=["runqueue_wait"]) if e.attributes["tid"] == tid]


def test_runqueue_waits_explain_the_request_they_overlapped(ebpf, inference_cgroup):
    node, collector = ebpf
    cg = inference_cgroup / "tracing"
    cg.mkdir(exist_ok=True)
    settings = ExplainSettings()
    enricher = Enricher(node.events, settings, ScopeResolver(Paths(), []), RequestMetrics(), RecentRequests(100))
    proc = subprocess.Popen([sys.executable, LOADS, "timed_wait", str(CPU), str(cg / "tasks"), str(N), str(MS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        tid = int(proc.stdout.readline().split()[1])
        assert collector.refresh_scope() >= 1
        # The worker's cgroup, resolved while it runs (as for a live vLLM).
        scope = enricher.resolver.scope(request(pid=tid))
        assert scope.cgroup and scope.cgroup.endswith("/tracing")
        before_start = time.time_ns()
        time.sleep(0.5)  # idle: nothing waits
        go = time.time_ns()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
        done = time.time_ns()
    finally:
        proc.kill()
    deadline = time.monotonic() + 10
    while len([e for e in _waits(node.events, tid, go) if e.magnitude >= MS / 1000 * 0.9]) < N \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    waits = _waits(node.events, tid, before_start)
    assert len([e for e in waits if e.magnitude >= MS / 1000 * 0.9]) >= N, [e.magnitude for e in waits]

    collector.drain_pressure()  # as span ingest does first (Enricher.process)

    def span(start: int, end: int):
        e2e = (end - start) / 1e9
        r = request(ttft=e2e / 2, queue=0.0, prefill=e2e / 2 - 0.001, decode=e2e / 2, e2e=e2e, pid=tid)
        return dataclasses.replace(r, start_ns=start, end_ns=end)

    # Run-queue sums come in 100 ms windows, apportioned evenly: the quiet request ends
    # more than one window before the waits start.
    quiet = enricher.enrich(span(before_start, go - 250_000_000))
    assert quiet.causes == [] and quiet.verdict == "no known cause"

    loud = enricher.enrich(span(go, done))
    top = loud.causes[0]
    assert top.kind == "runqueue_wait" and top.detail["cpu"] == CPU
    made = N * MS / 1000
    assert made * 0.7 <= top.explained_s <= made * 1.3, (top.explained_s, made, [e.magnitude for e in waits])
    # eBPF names the task switched out when the waiter finally ran: the spinner,
    # or whatever else (a kernel thread, another user's process) slipped in after it.
    holders = {e.attributes["holder_pid"] for e in waits}
    assert top.detail["holder_pid"] in holders
    assert f"on CPU {CPU}, CPU held by thread {top.detail['holder_pid']}" in top.text
