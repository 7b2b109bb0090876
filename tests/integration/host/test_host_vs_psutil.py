"""The host collectors on this machine's real /proc and /sys, checked against
psutil, an independent reader of the same kernel files (it computes its own
units: clock ticks from sysconf, sectors times 512)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from collectors.host.cpu import CpuCollector
from collectors.host.diskstats import DiskstatsCollector
from collectors.host.meminfo import MeminfoCollector
from collectors.host.netdev import NetdevCollector
from collectors.host.pressure import PressureCollector
from tests.unit.collector_helpers import make_collector, series

pytestmark = pytest.mark.integration
ROOT = Path("/")


def by(got, name, label):
    return {dict(k[1])[label]: v for k, v in got.items() if k[0] == name}


def test_cpu_seconds_match_psutil_per_cpu():
    got = series(make_collector(CpuCollector, ROOT).collect())
    ref = psutil.cpu_times(percpu=True)
    assert len({dict(k[1])["cpu"] for k in got}) == len(ref)
    for cpu, times in enumerate(ref):
        for mode in ("user", "system", "idle", "iowait", "softirq", "steal"):
            ours = got[("infernode_host_cpu_seconds_total", (("cpu", str(cpu)), ("mode", mode)))]
            # Read a moment apart: a CPU accrues at most that long in any mode.
            assert abs(ours - getattr(times, mode)) < 1.0, (cpu, mode)


def test_cpu_counters_do_not_go_backwards():
    c = make_collector(CpuCollector, ROOT)
    first = series(c.collect())
    second = series(c.collect())
    assert all(second[k] >= v for k, v in first.items())


def test_memory_matches_psutil():
    got = series(make_collector(MeminfoCollector, ROOT).collect())
    vm = psutil.virtual_memory()
    assert got[("infernode_host_memory_total_bytes", ())] == vm.total
    assert abs(got[("infernode_host_memory_available_bytes", ())] - vm.available) < 256 << 20
    assert got[("infernode_host_memory_swap_total_bytes", ())] == psutil.swap_memory().total


def test_disk_bytes_match_psutil_for_whole_disks():
    got = series(make_collector(DiskstatsCollector, ROOT).collect())
    ref = psutil.disk_io_counters(perdisk=True)
    reads = by(got, "infernode_host_disk_read_bytes_total", "device")
    assert reads, "no disks reported"
    for dev, value in reads.items():
        assert abs(value - ref[dev].read_bytes) < 64 << 20, dev
        assert not Path(f"/sys/block/{dev}").joinpath("partition").exists()


def test_network_counters_match_psutil_per_interface():
    got = series(make_collector(NetdevCollector, ROOT).collect())
    ref = psutil.net_io_counters(pernic=True)
    rx = {dev: v for (name, labels), v in got.items()
          if name == "infernode_host_network_bytes_total" and dict(labels)["direction"] == "receive"
          for dev in [dict(labels)["device"]]}
    assert set(rx) == set(ref)
    for dev, value in rx.items():
        assert abs(value - ref[dev].bytes_recv) < 16 << 20, dev


def test_pressure_when_the_kernel_has_psi():
    if not Path("/proc/pressure/cpu").exists():
        pytest.skip("kernel without PSI")
    c = make_collector(PressureCollector, ROOT)
    first = series(c.collect())
    assert {dict(k[1])["resource"] for k in first} == {"cpu", "memory", "io"}
    second = series(c.collect())
    assert all(second[k] >= v for k, v in first.items())
