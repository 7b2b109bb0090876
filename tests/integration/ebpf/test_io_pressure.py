"""Block I/O of inference threads, summed in the kernel per scope and device and
written as io_pressure windows."""

import os
import subprocess
import sys
import time

import pytest

from .conftest import scrape, value
from .test_io_net_mem import loop_device  # noqa: F401  (fixture)
from .test_sched import child_cgroup

pytestmark = pytest.mark.integration

READS = 200
# Waits for "go", then makes READS O_DIRECT 64 KiB reads of the device and prints
# its tid and the wall time spent inside the read calls.
READER = """
import mmap, os, sys, threading, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
sys.stdin.readline()
spent = 0.0
for i in range(%d):
    t = time.monotonic()
    os.preadv(fd, [buf], (i * 7 %% 400) * 65536)
    spent += time.monotonic() - t
print(threading.get_native_id(), spent, flush=True)
""" % READS


def _reader(dev: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", READER, dev], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def _run(proc: subprocess.Popen) -> tuple[int, float]:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    tid, spent = proc.stdout.readline().split()
    proc.wait(timeout=30)
    return int(tid), float(spent)


def test_reads_of_inference_threads_are_summed_per_scope_and_device(ebpf, inference_cgroup, loop_device):
    node, collector = ebpf
    name = os.path.basename(loop_device)
    cg = child_cgroup(inference_cgroup, "io")
    inside, outside = _reader(loop_device), _reader(loop_device)
    try:
        (cg / "tasks").write_text(str(inside.pid))
        collector.refresh_scope()
        subject = f"cgroup:{collector.scopes.names[collector.scopes.tids[inside.pid]]}"
        before = scrape(node)
        collector.drain_pressure()
        t0 = time.time_ns()
        _, spent = _run(inside)
        _run(outside)
        collector.drain_pressure()
        t1 = time.time_ns()
    finally:
        for p in (inside, outside):
            if p.poll() is None:
                p.kill()
                p.wait()
    after = scrape(node)

    windows = [e for e in node.events.query(t0, t1 + 1, kinds=["io_pressure"]) if e.attributes["device"] == name]
    assert windows and {e.subject for e in windows} == {subject}  # the outsider's reads are in no window
    assert sum(e.attributes["requests"] for e in windows) == READS
    assert sum(e.attributes["reads"] for e in windows) == READS
    assert sum(e.attributes["bytes"] for e in windows) == READS * 65536
    # The kernel's submission -> completion waits lie inside the reader's read calls.
    waited = sum(e.magnitude for e in windows)
    assert 0.2 * spent < waited <= spent, (waited, spent)

    labels = {"device": name}
    grew = (value(after, "infernode_block_io_inference_requests_total", **labels)
            - value(before, "infernode_block_io_inference_requests_total", **labels))
    assert grew == READS
    assert value(after, "infernode_block_io_inference_wait_seconds_total", **labels) > 0
