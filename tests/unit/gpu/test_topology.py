"""Topology API: cpulist parsing, NVML with sysfs fallback, NICs, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.cpulist import format_cpulist, parse_cpulist
from agent.paths import Paths
from collectors.gpu.topology import cpus_from_mask_words, gpu_topology, nic_topology, node_topology
from tests.doubles.fake_pynvml import FakePynvml
from tests.unit.gpu.helpers import FIXTURE_ROOT, make_collector

NODE0 = tuple(sorted(parse_cpulist("0-55,112-167")))
NODE1 = tuple(sorted(parse_cpulist("56-111,168-223")))


@pytest.mark.parametrize("text,cpus", [
    ("0-3,8,10-11\n", [0, 1, 2, 3, 8, 10, 11]),
    ("5", [5]),
    ("", []),
    ("0-7:2", [0, 2, 4, 6]),
    ("3,1,2", [1, 2, 3]),
])
def test_parse_cpulist(text: str, cpus: list[int]) -> None:
    assert parse_cpulist(text) == frozenset(cpus)


def test_parse_cpulist_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_cpulist("7-3")
    with pytest.raises(ValueError):
        parse_cpulist("a-b")


def test_format_cpulist_round_trips() -> None:
    for text in ("0-55,112-167", "1,3,5-6", "0"):
        assert format_cpulist(parse_cpulist(text)) == text


def test_cpu_mask_words() -> None:
    assert cpus_from_mask_words([0b1011, 1 << 63, 1]) == [0, 1, 3, 127, 128]


def test_sysfs_only_topology_of_fixture() -> None:
    gpus = gpu_topology(Paths(FIXTURE_ROOT))  # a fixture root never asks the host's NVML
    assert [g.pci_bus_id for g in gpus] == [f"0000:{b}:00.0" for b in ("18", "2a", "3a", "5d", "9a", "ab", "ba", "db")]
    assert [g.numa_node for g in gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert gpus[0].local_cpus == NODE0 and gpus[7].local_cpus == NODE1
    assert {g.source for g in gpus} == {"sysfs"} and all(g.uuid == "" for g in gpus)


def test_nvml_topology_with_sysfs_filling_gaps() -> None:
    fake = FakePynvml.load("h100_sxm_8x")
    fake.devices[2]["not_supported"] = ["nvmlDeviceGetNumaNodeId", "nvmlDeviceGetCpuAffinity"]
    gpus = gpu_topology(Paths(FIXTURE_ROOT), nvml=fake)
    assert [g.uuid for g in gpus] == [d["uuid"] for d in fake.devices]
    assert gpus[5].numa_node == 1 and gpus[5].local_cpus == NODE1 and gpus[5].source == "nvml"
    assert gpus[2].numa_node == 0 and gpus[2].local_cpus == NODE0, "from sysfs for the bus id NVML gave"
    assert gpus[2].pci_bus_id == "0000:3a:00.0"
    assert fake.refcount == 0


def test_nvml_unavailable_falls_back_to_sysfs() -> None:
    gpus = gpu_topology(Paths(FIXTURE_ROOT), nvml=FakePynvml.load("no_driver"))
    assert len(gpus) == 8 and gpus[0].source == "sysfs"


def test_nics_from_sysfs() -> None:
    nics = nic_topology(Paths(FIXTURE_ROOT))
    assert [(n.name, n.pci_bus_id, n.numa_node) for n in nics] == [
        ("ens1f0np0", "0000:29:00.0", 0), ("ens9f0np0", "0000:a9:00.0", 1)]
    assert nics[1].local_cpus == NODE1


def test_node_topology_groups_by_numa() -> None:
    topo = node_topology(Paths(FIXTURE_ROOT))
    assert [g.index for g in topo.gpus_on_node(1)] == [4, 5, 6, 7]
    doc = topo.to_json()
    assert doc["gpus"][0]["local_cpulist"] == "0-55,112-167"


def test_collector_publishes_topology_service() -> None:
    c, fake, store = make_collector("h100_sxm_8x")
    c.start()
    assert c.wait_first_poll(5)
    try:
        topo = c.ctx.services.gpu_topology()
    finally:
        c.stop()
    assert [g.numa_node for g in topo.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert topo.gpus[0].model_name == "NVIDIA H100 80GB HBM3"
    assert [n.name for n in topo.nics] == ["ens1f0np0", "ens9f0np0"]


def test_cli_table_and_json() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["topology", "--root", str(FIXTURE_ROOT)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["GPU", "UUID", "PCI"]
    assert "0000:db:00.0" in r.output and "56-111,168-223" in r.output and "ens9f0np0" in r.output
    r = runner.invoke(main, ["topology", "--root", str(FIXTURE_ROOT), "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert len(doc["gpus"]) == 8 and doc["nics"][0]["numa_node"] == 0


def test_cli_rejects_missing_root() -> None:
    r = CliRunner().invoke(main, ["topology", "--root", "/nonexistent/infernode-root"])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_importing_the_gpu_package_loads_no_nvml() -> None:
    code = ("import sys; import collectors.gpu.collector, collectors.gpu.topology, agent.plugins; "
            "agent.plugins.build_catalog(); print('pynvml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _copy_fixture(tmp_path):
    import shutil
    root = tmp_path / "node"
    shutil.copytree(FIXTURE_ROOT, root, symlinks=True)
    return root


def test_coherent_platform_keeps_the_cpu_node_and_the_gpu_memory_node_apart() -> None:
    # Grace-class: nvmlDeviceGetNumaNodeId names the GPU's own memory node (no CPUs).
    fake = FakePynvml.load("h100_sxm_8x")
    for i, d in enumerate(fake.devices):
        d["gpu_memory_numa_node"] = 2 + i
    topo = node_topology(Paths(FIXTURE_ROOT), fake)
    assert [g.numa_node for g in topo.gpus] == [0, 0, 0, 0, 1, 1, 1, 1], "CPU-local nodes, from sysfs"
    assert [g.memory_node for g in topo.gpus] == list(range(2, 10))
    assert [g.index for g in topo.gpus_on_node(0)] == [0, 1, 2, 3]
    assert topo.gpus[4].local_cpus == NODE1


def test_pcie_platform_has_no_gpu_memory_node() -> None:
    topo = node_topology(Paths(FIXTURE_ROOT), FakePynvml.load("h100_sxm_8x"))
    assert all(g.memory_node is None for g in topo.gpus)
    assert [g.numa_node for g in topo.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_unknown_sysfs_node_falls_back_to_nvml_memory_affinity(tmp_path) -> None:
    root = _copy_fixture(tmp_path)
    (root / "sys/devices/pci0000:00/0000:9a:00.0/numa_node").write_text("-1\n")
    (root / "sys/devices/pci0000:00/0000:ab:00.0/numa_node").write_text("garbage\n")
    fake = FakePynvml.load("h100_sxm_8x")
    fake.devices[5]["not_supported"] = ["nvmlDeviceGetMemoryAffinity"]
    gpus = gpu_topology(Paths(root), nvml=fake)
    assert gpus[4].numa_node == 1, "NVML's nearest memory node"
    assert gpus[5].numa_node is None, "neither source knows"
    assert gpus[0].numa_node == 0
