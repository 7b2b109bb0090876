"""Reclaim stalls of inference threads, summed in the kernel per scope and kind and
written as reclaim_pressure windows; another process's reclaim is in none."""

import subprocess
import sys
import time

import pytest

from .conftest import limited_memory_cgroup, scrape, value
from .test_sched import child_cgroup

pytestmark = pytest.mark.integration

# Waits for "go", then reads a sparse file's holes: the page cache fills without disk
# I/O, and past its memory cgroup's limit the reading thread reclaims for itself.
READER = """
import sys
sys.stdin.readline()
with open(sys.argv[1], "rb") as f:
    while f.read(1 << 20):
        pass
print("done", flush=True)
"""


def _reader(sparse, memory_cgroup) -> subprocess.Popen:
    return subprocess.Popen(["sh", "-c", f'echo $$ > {memory_cgroup}/tasks && exec "$@"', "sh",
                             sys.executable, "-c", READER, str(sparse)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _run(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"
    proc.wait(timeout=60)


def test_memcg_reclaim_of_inference_threads_is_summed_per_scope_and_kind(ebpf, inference_cgroup, tmp_path):
    node, collector = ebpf
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(192 << 20)
    cg = child_cgroup(inference_cgroup, "reclaim")
    with limited_memory_cgroup("rc-in") as mem_in, limited_memory_cgroup("rc-out") as mem_out:
        inside, outside = _reader(sparse, mem_in), _reader(sparse, mem_out)
        try:
            (cg / "tasks").write_text(str(inside.pid))
            collector.refresh_scope()
            subject = f"cgroup:{collector.scopes.names[collector.scopes.tids[inside.pid]]}"
            labels = {"scope": "inference", "kind": "memcg"}
            before = scrape(node)
            collector.drain_pressure()  # what came before belongs to no window here
            t0 = time.time_ns()
            _run(inside)
            _run(outside)
            collector.drain_pressure()
            t1 = time.time_ns()
        finally:
            for p in (inside, outside):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    after = scrape(node)

    windows = node.events.query(t0 - 1, t1 + 1, kinds=["reclaim_pressure"])
    # The outsider reclaimed too (its own limit), but it is no inference thread.
    assert windows and {e.subject for e in windows} == {subject}, windows
    assert {e.attributes["kind"] for e in windows} == {"memcg"}
    stalls = sum(e.attributes["stalls"] for e in windows)
    stalled = sum(e.magnitude for e in windows)
    # The windows sum exactly what the kernel's per-scope counters counted meanwhile.
    grew_n = (value(after, "infernode_reclaim_stalls_total", **labels)
              - value(before, "infernode_reclaim_stalls_total", **labels))
    grew_s = (value(after, "infernode_reclaim_stall_seconds_total", **labels)
              - value(before, "infernode_reclaim_stall_seconds_total", **labels))
    assert stalls == grew_n > 0
    assert stalled == pytest.approx(grew_s, rel=1e-6, abs=1e-9)
    print(f"\n[reclaim pressure] {stalls} memcg stalls of the inference reader, {stalled * 1e3:.2f} ms, "
          f"in {len(windows)} windows")
