"""A ring buffer too small for the event rate: losses are counted, not hidden."""

import subprocess
import sys

import pytest

from agent.config import parse_config
from agent.paths import Paths
from agent.telemetry import Telemetry

from .conftest import only_ebpf, scrape, value, wait_for

pytestmark = pytest.mark.integration

ONLY_RUNQUEUE = {n: n == "runqueue" for n in
                 ("runqueue", "offcpu", "blockio", "tcp_retransmit", "oom", "reclaim", "irq")}


def test_overflowing_ring_buffer_counts_lost_events(inference_cgroup):
    cg = inference_cgroup / "lossy"
    cg.mkdir(exist_ok=True)
    cfg = parse_config({"collectors": {**only_ebpf(), "ebpf": {
        "enabled": True, "programs": ONLY_RUNQUEUE, "inference_cgroups": [str(cg)],
        "ringbuf_pages": 1, "runqueue_threshold": "0s", "cache_max_age": 0,
    }}})
    node = Telemetry.build(cfg, Paths("/"))
    node.runtime.start()
    try:
        c = next(c for c in node.runtime.collectors if c.name == "ebpf")
        assert c.loaded.wait(120) and c.state["runqueue"].up
        # Every wakeup of these threads is an "outlier" at threshold 0: four
        # producers on two CPUs out-run one Python reader draining a 4 KiB buffer
        # (about 40 records).
        sleepers = [subprocess.Popen([sys.executable, "-c", "import sys, time\nsys.stdin.readline()\n"
                                      "for _ in range(5000): time.sleep(0.000001)"], stdin=subprocess.PIPE, text=True)
                    for _ in range(4)]
        for p in sleepers:
            (cg / "tasks").write_text(str(p.pid))
        assert c.refresh_scope() == 4
        for p in sleepers:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in sleepers:
            assert p.wait(timeout=60) == 0
        lost = wait_for(lambda: value(scrape(node), "infernode_ebpf_events_lost_total", program="runqueue"))
        assert lost > 0
        assert c.events_read["runqueue"] > 0  # the reader kept draining what fit
    finally:
        node.runtime.stop()
