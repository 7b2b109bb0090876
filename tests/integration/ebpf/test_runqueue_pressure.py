"""Every run-queue wait of inference threads, summed in the kernel and written as
runqueue_pressure windows; threads born of inference threads are in scope at once."""

import ctypes
import os
import subprocess
import sys
import time

import pytest

from .test_sched import child_cgroup

pytestmark = pytest.mark.integration

CPU = os.cpu_count() - 1

# Started in the cgroup; on "go" starts a thread that spins SECONDS of wall time on
# CPU and reports its tid, then its wall and CPU time: for a thread that never
# sleeps, wall - CPU is exactly the time it waited on the run queue.
SPINNER = """
import os, sys, threading, time
os.sched_setaffinity(0, {%d})
sys.stdin.readline()
out = {}
started = threading.Event()
def spin():
    out["tid"] = threading.get_native_id()
    started.set()
    sys.stdin.readline()
    w0, c0 = time.monotonic(), time.thread_time()
    while time.monotonic() - w0 < %f:
        pass
    out["wall"], out["cpu"] = time.monotonic() - w0, time.thread_time() - c0
t = threading.Thread(target=spin); t.start(); started.wait()
print("tid", out["tid"], flush=True)
t.join()
print("times", out["wall"], out["cpu"], flush=True)
"""


def test_waits_below_the_outlier_threshold_are_summed_per_window(ebpf, inference_cgroup):
    node, collector = ebpf
    cg = child_cgroup(inference_cgroup, "pressure")
    spin_s = 1.0
    proc = subprocess.Popen([sys.executable, "-c", SPINNER % (CPU, spin_s)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    hog = None
    try:
        (cg / "tasks").write_text(str(proc.pid))
        collector.refresh_scope()
        subject = f"cgroup:{collector.scopes.names[collector.scopes.tids[proc.pid]]}"
        tmap = collector.module.table("scope_tids")
        # No scope refresh may run until the thread is checked: the kernel alone put it there.
        with collector._scope_lock:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            tid = int(proc.stdout.readline().split()[1])
            assert tid not in collector.scopes.tids
            assert tmap[ctypes.c_uint32(tid)].value == collector.scopes.tids[proc.pid]
        hog = subprocess.Popen([sys.executable, "-c",
                                f"import os; os.sched_setaffinity(0, {{{CPU}}})\nwhile True: pass"])
        time.sleep(0.2)
        t0 = time.time_ns()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _, wall, cpu = proc.stdout.readline().split()
        t1 = time.time_ns()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        if hog is not None:
            hog.kill()
            hog.wait()
    collector.drain_pressure()
    waited = float(wall) - float(cpu)
    windows = [e for e in node.events.query(t0, t1, [subject], kinds=["runqueue_pressure"])
               if e.attributes["cpu"] == CPU]
    assert windows, "no runqueue_pressure window for the contended scope"
    # Windows are the drain period (100 ms by default) apart, whole ones only inside.
    inside = [e for e in windows if t0 <= e.start_ns and e.end_ns <= t1]
    assert all(0.05 <= e.duration_s <= 0.5 for e in inside), [e.duration_s for e in inside]
    summed = sum(e.magnitude for e in windows)
    print(f"waited {waited:.3f} s (wall - cpu), windows sum {sum(e.magnitude for e in windows):.3f} s"
          f" in {sum(int(e.attributes['waits']) for e in windows)} waits, {len(windows)} windows")
    assert waited > 0.2, (wall, cpu)  # the hog took a real share of the CPU
    # The windows overlapping the spin also hold the main thread's few wakeups and
    # the edges of the windows around it.
    assert 0.85 * waited <= summed <= 1.25 * waited, (summed, waited, len(windows))
    # Mostly short waits: more waits than the outlier threshold could ever show.
    waits = sum(int(e.attributes["waits"]) for e in windows)
    assert waits >= 20 and summed / waits < collector.settings.runqueue_threshold, (waits, summed)
    assert all(e.attributes["aggregate"] is True for e in windows)
