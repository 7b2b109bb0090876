"""Cost of the host and cgroup collectors per run, on this machine and on the
2-socket GPU node tree (32 CPUs, 2 workers). Prints numbers; asserts nothing
timing-based. `make bench` runs it."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from agent.collector import NoDataError
from collectors.cgroup import CgroupCollector
from collectors.host.cpu import CpuCollector
from collectors.host.diskstats import DiskstatsCollector
from collectors.host.loadavg import LoadavgCollector
from collectors.host.meminfo import MeminfoCollector
from collectors.host.netdev import NetdevCollector
from collectors.host.pressure import PressureCollector
from tests.unit.collector_helpers import make_collector

CLASSES = (LoadavgCollector, CpuCollector, MeminfoCollector, PressureCollector, DiskstatsCollector,
           NetdevCollector, CgroupCollector)
ROOTS = {"host": Path("/"), "gpu-node-2s8g": Path(__file__).resolve().parents[1] / "fixtures" / "gpu-node-2s8g"}
RUNS = 200


@pytest.mark.bench
@pytest.mark.parametrize("root", list(ROOTS))
def test_collector_cost(root):
    print(f"\n{root}: per collector over {RUNS} runs (wall ms median / p99, CPU ms mean, samples)")
    total_cpu = 0.0
    for cls in CLASSES:
        c = make_collector(cls, ROOTS[root])
        walls, n = [], 0
        cpu0 = time.process_time()
        for _ in range(RUNS):
            t0 = time.perf_counter()
            try:
                n = len(list(c.collect()))
            except NoDataError:
                n = 0
            walls.append(time.perf_counter() - t0)
        cpu = (time.process_time() - cpu0) / RUNS
        total_cpu += cpu
        walls.sort()
        p99 = walls[int(0.99 * (RUNS - 1))]
        print(f"  {cls.name:<10} {statistics.median(walls) * 1e3:7.3f} / {p99 * 1e3:7.3f}   "
              f"{cpu * 1e3:7.3f}   {n}")
    print(f"  all: {total_cpu * 1e3:.3f} ms CPU per scrape; at a 15 s interval "
          f"{total_cpu / 15 * 100:.4f}% of one core")
    assert total_cpu > 0
