from pathlib import Path

from agent.config import parse_config
from agent.doctor import cgroup_layout, doctor_rows, healthy, host_rows
from agent.paths import Paths
from agent.telemetry import Telemetry

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def row(rows, item):
    return next(r for r in rows if r.item == item)


def test_vm_tree_is_hybrid_with_v1_controllers_and_v2_hugetlb():
    layout, ctrls = cgroup_layout(Paths(FIXTURES / "vm"))
    assert layout == "hybrid"
    assert ctrls == ["blkio (v1)", "cpu (v1)", "cpuacct (v1)", "cpuset (v1)", "devices (v1)",
                     "freezer (v1)", "memory (v1)", "pids (v1)", "hugetlb (v2)"]
    r = row(host_rows(Paths(FIXTURES / "vm")), "cgroup hierarchy")
    assert r.status == "ok" and r.detail.startswith("hybrid: blkio (v1)")


def test_gpu_node_tree_is_v2():
    assert cgroup_layout(Paths(FIXTURES / "gpu-node-2s8g")) == (
        "v2", ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"])


def test_pure_v1_and_no_cgroups(tmp_path):
    for c in ("cpu", "memory"):
        (tmp_path / "v1/sys/fs/cgroup" / c).mkdir(parents=True)
        (tmp_path / "v1/sys/fs/cgroup" / c / "cgroup.procs").write_text("")
    assert cgroup_layout(Paths(tmp_path / "v1")) == ("v1", ["cpu", "memory"])
    (tmp_path / "bare").mkdir()
    r = row(host_rows(Paths(tmp_path / "bare")), "cgroup hierarchy")
    assert (r.status, r.detail) == ("fail", "none: no controllers")
    assert "mount cgroup2" in r.fix


def test_psi_row(tmp_path):
    assert row(host_rows(Paths(FIXTURES / "gpu-node-2s8g")), "PSI").status == "ok"
    (tmp_path / "proc").mkdir()
    r = row(host_rows(Paths(tmp_path)), "PSI")
    assert r.status == "warn" and "psi=1" in r.fix


def test_doctor_on_the_trees():
    cfg = parse_config({"server": {"collector_timeout": "30s"}})
    # The GPU node's tree has 8 NVIDIA GPUs on PCI but no NVML library can load
    # here: doctor must call that node unhealthy, and only because of the GPU.
    for tree, ok in (("vm", True), ("gpu-node-2s8g", False), ("malformed", False)):
        node = Telemetry.build(cfg, Paths(FIXTURES / tree))
        node.runtime.start()
        try:
            rows = doctor_rows(node)
        finally:
            node.runtime.stop()
        assert healthy(rows) is ok, tree
        assert row(rows, "inference.slice").subsystem == "cgroup"
        if tree == "gpu-node-2s8g":
            failing = {(r.subsystem, r.item) for r in rows if r.status == "fail"}
            assert failing and all(sub == "gpu" or item == "gpu" for sub, item in failing), failing
        if tree == "malformed":
            cpu = next(r for r in rows if r.subsystem == "collector" and r.item == "cpu")
            assert cpu.status == "fail" and "/proc/stat line 3" in cpu.detail
