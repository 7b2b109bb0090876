from pathlib import Path

import pytest

from agent.cgroups import unit_of_cgroup
from agent.collector import NoDataError
from agent.config import ConfigError, parse_config
from agent.paths import Paths
from collectors.cgroup import CgroupCollector, detect_layout
from tests.unit.collector_helpers import make_collector, series, write_tree

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LLAMA = "/inference.slice/infernode-worker@llama.service"


def key(name, cgroup, **labels):
    return (name, tuple(sorted({"cgroup": cgroup, "unit": unit_of_cgroup(cgroup), **labels}.items())))


def test_layouts_of_the_fixture_trees():
    assert detect_layout(Paths(FIXTURES / "gpu-node-2s8g")).kind == "v2"
    vm = detect_layout(Paths(FIXTURES / "vm"))
    assert vm.kind == "hybrid" and vm.unified == FIXTURES / "vm/sys/fs/cgroup/unified"
    assert set(vm.v1) == {"systemd", "cpu", "cpuacct", "memory", "blkio"}


def test_v2_slice_and_units():
    got = series(make_collector(CgroupCollector, FIXTURES / "gpu-node-2s8g").collect())
    cgroups = {dict(k[1])["cgroup"] for k in got}
    assert cgroups == {"/inference.slice", LLAMA, "/inference.slice/infernode-worker@qwen.service"}
    assert got[key("infernode_cgroup_cpu_usage_seconds_total", LLAMA)] == 9234.567123
    assert got[key("infernode_cgroup_cpu_throttled_seconds_total", LLAMA)] == 61.234567
    assert got[key("infernode_cgroup_cpu_throttled_periods_total", LLAMA)] == 1204
    assert got[key("infernode_cgroup_memory_high_bytes", LLAMA)] == 858993459200
    # memory.high "max": no limit, no series.
    assert key("infernode_cgroup_memory_high_bytes", "/inference.slice/infernode-worker@qwen.service") not in got
    assert key("infernode_cgroup_memory_max_bytes", "/inference.slice") not in got
    qwen = "/inference.slice/infernode-worker@qwen.service"
    assert got[key("infernode_cgroup_memory_events_total", qwen, event="oom_kill")] == 1
    assert got[key("infernode_cgroup_io_bytes_total", LLAMA, device="nvme1n1", direction="read")] == 50239209472
    assert got[key("infernode_cgroup_io_ops_total", qwen, device="nvme2n1", direction="write")] == 211998
    assert got[key("infernode_cgroup_pressure_stall_seconds_total", LLAMA,
                   resource="io", scope="full")] == 31.234567


def test_hybrid_reads_v1_controllers_and_psi_from_the_unified_tree():
    got = series(make_collector(CgroupCollector, FIXTURES / "vm").collect())
    assert got[key("infernode_cgroup_cpu_usage_seconds_total", LLAMA)] == 612.345678901
    assert got[key("infernode_cgroup_cpu_throttled_seconds_total", LLAMA)] == 38.211004512
    assert got[key("infernode_cgroup_memory_max_bytes", LLAMA)] == 8589934592
    assert key("infernode_cgroup_memory_max_bytes", "/inference.slice") not in got  # v1 "unlimited"
    assert got[key("infernode_cgroup_memory_events_total", LLAMA, event="oom_kill")] == 1
    assert got[key("infernode_cgroup_memory_events_total", LLAMA, event="max")] == 37
    assert got[key("infernode_cgroup_io_bytes_total", LLAMA, device="vda", direction="write")] == 52428800
    assert got[key("infernode_cgroup_pressure_stall_seconds_total", LLAMA,
                   resource="cpu", scope="some")] == 47.900112


def test_pure_v1_without_unified_tree_and_co_mounted_cpu_cpuacct(tmp_path):
    cg = "sys/fs/cgroup/"
    unit = "inference.slice/w.service/"
    root = write_tree(tmp_path, {
        cg + "cpu,cpuacct/" + unit + "cpuacct.usage": "2000000000\n",
        cg + "cpu,cpuacct/" + unit + "cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000000\n",
        cg + "memory/" + unit + "memory.usage_in_bytes": "4096\n",
        cg + "memory/" + unit + "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n",  # before 4.13
    })
    (tmp_path / cg / "cpu").symlink_to("cpu,cpuacct")
    (tmp_path / cg / "cpuacct").symlink_to("cpu,cpuacct")
    c = make_collector(CgroupCollector, root)
    assert detect_layout(c.paths).kind == "v1"
    got = series(c.collect())
    u = "/inference.slice/w.service"
    assert got[key("infernode_cgroup_cpu_usage_seconds_total", u)] == 2.0
    assert got[key("infernode_cgroup_cpu_throttled_seconds_total", u)] == 0.005
    assert got[key("infernode_cgroup_memory_current_bytes", u)] == 4096
    assert not any(k[0] == "infernode_cgroup_memory_events_total" for k in got)
    assert not any(k[0] == "infernode_cgroup_pressure_stall_seconds_total" for k in got)


def test_nested_slice_and_sub_cgroups_of_units(tmp_path):
    base = "sys/fs/cgroup/"
    s = "inference.slice/inference-gpu.slice/"
    root = write_tree(tmp_path, {
        base + "cgroup.controllers": "cpu memory\n",
        base + s + "memory.current": "1\n",
        base + s + "a.service/memory.current": "2\n",
        base + s + "a.service/payload/memory.current": "3\n",  # the unit's own business
        base + s + "sub-x.slice/b.scope/memory.current": "4\n",
        base + s + "notaunit/memory.current": "5\n",
    })
    got = series(make_collector(CgroupCollector, root, slice="inference-gpu.slice").collect())
    # sub-x.slice is visited (it has no memory.current, so no series of its own).
    assert {dict(k[1])["cgroup"]: v for k, v in got.items()} == {
        "/inference.slice/inference-gpu.slice": 1,
        "/inference.slice/inference-gpu.slice/a.service": 2,
        "/inference.slice/inference-gpu.slice/sub-x.slice/b.scope": 4,
    }


def test_missing_slice_is_no_data(tmp_path):
    write_tree(tmp_path, {"sys/fs/cgroup/cgroup.controllers": "cpu\n"})
    with pytest.raises(NoDataError, match="inference.slice does not exist in the v2"):
        list(make_collector(CgroupCollector, tmp_path).collect())


def test_doctor_row_names_layout_and_units():
    rows = list(make_collector(CgroupCollector, FIXTURES / "vm").doctor())
    assert rows[0].status == "ok"
    assert "hybrid" in rows[0].detail and "infernode-worker@llama.service" in rows[0].detail


def test_slice_setting_is_validated():
    with pytest.raises(ConfigError, match="collectors.cgroup.slice"):
        parse_config({"collectors": {"cgroup": {"slice": "inference"}}})
