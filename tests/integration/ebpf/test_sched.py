"""Run-queue latency on the real scheduler: contention and a known ~20 ms wait."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors.ebpf.histogram import slot_of, slot_upper_bound

from .conftest import bucket_count, scrape, value, wait_for

pytestmark = pytest.mark.integration

LOADS = str(Path(__file__).with_name("loads.py"))
CPU = os.cpu_count() - 1


def child_cgroup(parent: Path, name: str, shares: int | None = None) -> Path:
    d = parent / name
    d.mkdir(exist_ok=True)
    if shares is not None:
        (d / "cpu.shares").write_text(str(shares))
    return d


def runq_waits(node, tid: int, since_ns: int):
    return [e for e in node.events.query(since_ns, time.time_ns(), kinds=["runqueue_wait"])
            if e.attributes["tid"] == tid]


def test_contended_inference_thread_waits_and_is_named(ebpf, inference_cgroup):
    node, collector = ebpf
    # Target and hogs in sibling groups, the target's at a tenth of the hogs' weight:
    # it then waits several hog slices (tens of ms) for each turn, far over the 5 ms
    # outlier threshold. (Weights only compete between siblings: a low-weight group
    # beside nothing else would win its parent's whole share and wait only one EEVDF
    # slice, 3-4 ms here, right under the threshold.)
    cg = child_cgroup(inference_cgroup, "contention", shares=100)
    hog_cg = child_cgroup(inference_cgroup, "contention-hogs", shares=1024)
    before = scrape(node)
    t0 = time.time_ns()
    target = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline();"
                               f"exec(open({LOADS!r}).read().split('if __name__')[0]); spin({CPU}, 1.5)"],
                              stdin=subprocess.PIPE, text=True)
    try:
        (cg / "tasks").write_text(str(target.pid))
        assert collector.refresh_scope() >= 1
        hogs = [subprocess.Popen(["sh", "-c", f'echo $$ > {hog_cg / "tasks"} && exec "$@"', "sh",
                                  sys.executable, LOADS, "spin", str(CPU), "1.5"]) for _ in range(2)]
        target.stdin.write("go\n")
        target.stdin.flush()
        for p in (target, *hogs):
            assert p.wait(timeout=30) == 0
    finally:
        target.kill()
    waits = wait_for(lambda: runq_waits(node, target.pid, t0))
    assert waits, "no runqueue_wait event named the contended thread"
    hog_pids = {h.pid for h in hogs}
    assert any(e.attributes["holder_pid"] in hog_pids for e in waits), (hog_pids, waits)
    assert all(e.magnitude >= 0.005 and e.subject.startswith("cgroup:/") for e in waits), waits
    assert all(t0 <= e.end_ns <= time.time_ns() for e in waits), (t0, waits)  # monotonic -> realtime
    after = scrape(node)
    grew = (after[("infernode_runqueue_latency_seconds", (("scope", "inference"),))].count
            - before[("infernode_runqueue_latency_seconds", (("scope", "inference"),))].count)
    assert grew >= len(waits), (grew, waits)
    invol = ("infernode_offcpu_seconds", (("kind", "involuntary"), ("scope", "inference")))
    assert after[invol].count > before[invol].count  # preempted by the hogs
    off = after[invol].sum - before[invol].sum
    assert off >= sum(e.magnitude for e in waits) * 0.5, (off, waits)
    assert value(after, "infernode_ebpf_events_lost_total", program="runqueue") == 0


def test_twenty_millisecond_wait_lands_in_the_bucket_containing_it(ebpf, inference_cgroup):
    node, collector = ebpf
    cg = child_cgroup(inference_cgroup, "timed")
    n, ms = 4, 20
    key = ("infernode_runqueue_latency_seconds", (("scope", "inference"),))
    lo, hi = slot_upper_bound(slot_of(ms * 10**6) - 1), slot_upper_bound(slot_of(ms * 10**6))
    assert lo < ms / 1000 <= hi
    proc = subprocess.Popen([sys.executable, LOADS, "timed_wait", str(CPU), str(cg / "tasks"), str(n), str(ms)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        tid = int(proc.stdout.readline().split()[1])
        assert collector.refresh_scope() >= 1
        before = scrape(node)[key]
        t0 = time.time_ns()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    waits = wait_for(lambda: [e for e in runq_waits(node, tid, t0) if e.magnitude >= ms / 1000 * 0.9])
    assert waits, "the made-to-wait thread produced no run-queue event"
    after = scrape(node)[key]
    in_bucket = bucket_count(after, lo, hi) - bucket_count(before, lo, hi)
    expected = sum(1 for e in waits if lo < e.magnitude <= hi)
    assert expected >= 1, [e.magnitude for e in waits]
    assert in_bucket >= expected


def test_threads_joining_the_inference_cgroup_are_picked_up_without_a_call(ebpf, inference_cgroup):
    node, collector = ebpf
    cg = child_cgroup(inference_cgroup, "periodic")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (cg / "tasks").write_text(str(sleeper.pid))
        # scope_refresh is 500 ms in this session's config
        assert wait_for(lambda: sleeper.pid in collector.scopes.tids, timeout=5)
        assert value(scrape(node), "infernode_ebpf_scope_threads") >= 1
    finally:
        sleeper.kill()
        sleeper.wait()
    assert wait_for(lambda: sleeper.pid not in collector.scopes.tids, timeout=5)
