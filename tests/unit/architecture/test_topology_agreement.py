"""The worker's pinning, tuning's inference CPU set and the tracing's GPU scope
read one host topology: on every fixture tree (and on a tree of garbage), they
agree on each GPU's NUMA node and local CPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.paths import Paths
from agent.services import Services
from agent.topology import read_host_topology
from agent.tracing.scope import ScopeResolver
from agent.worker.placement import SysfsPlacement
from collectors.gpu.topology import node_topology
from tuning.settings import TuningSettings
from tuning.topology import housekeeping_cpus, inference_cpus
from tuning.tunable import TuneContext

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TREES = sorted(p.parents[3] for p in FIXTURES.glob("*/sys/bus/pci/devices")) + \
    sorted(p.parents[3] for p in FIXTURES.glob("*/*/sys/bus/pci/devices"))


def garbage_tree(root: Path) -> Path:
    """Two GPUs: one whose numa_node and local_cpulist are garbage (its node is
    unknown: no CPUs), one with no local_cpulist (its node's CPUs)."""
    def w(rel: str, text: str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    w("sys/devices/system/node/node0/cpulist", "0-3\n")
    w("sys/devices/system/node/node1/cpulist", "4-7\n")
    for bdf, numa, local in (("0000:18:00.0", "zero\n", "0-3,x\n"), ("0000:9a:00.0", "1\n", None)):
        w(f"sys/bus/pci/devices/{bdf}/vendor", "0x10de\n")
        w(f"sys/bus/pci/devices/{bdf}/class", "0x030200\n")
        w(f"sys/bus/pci/devices/{bdf}/numa_node", numa)
        if local is not None:
            w(f"sys/bus/pci/devices/{bdf}/local_cpulist", local)
    return root


def consumers(root: Path) -> tuple[list, list, list]:
    paths = Paths(root)
    topo = read_host_topology(paths)
    n = len(topo.gpus)
    worker = [SysfsPlacement(paths).placement([i]) for i in range(n)]
    worker_view = [(p.numa_nodes[0] if p.numa_nodes else None, frozenset(p.cpus)) for p in worker]
    ctx = TuneContext(paths, TuningSettings())
    tuning_view = [(g.numa_node, frozenset(g.local_cpus)) for g in ctx.topology.gpus]
    scope = ScopeResolver(paths, [], Services(gpu_topology=lambda: node_topology(paths)))
    nics_by_node: dict[int | None, tuple[str, ...]] = {}
    for nic in topo.nics:
        nics_by_node[nic.numa_node] = (*nics_by_node.get(nic.numa_node, ()), nic.name)
    scope_view = [scope.nics([i]) for i in range(n)]
    expected_nics = [tuple(sorted(nics_by_node.get(node, ()))) if node is not None else ()
                     for node, _ in worker_view]
    assert scope_view == expected_nics
    return worker_view, tuning_view, scope_view


@pytest.mark.parametrize("tree", TREES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_all_three_agree_on_every_fixture_tree(tree: Path) -> None:
    worker_view, tuning_view, _ = consumers(tree)
    assert worker_view == tuning_view
    # The inference CPU set is made of exactly the CPUs the workers are pinned to.
    ctx = TuneContext(Paths(tree), TuningSettings())
    gpu_cpus = frozenset().union(*(cpus for _, cpus in worker_view)) if worker_view else frozenset()
    if gpu_cpus:
        assert inference_cpus(ctx.topology, TuningSettings()) == gpu_cpus - housekeeping_cpus(ctx.topology,
                                                                                               TuningSettings())


def test_the_fixture_trees_are_found() -> None:
    names = {str(t.relative_to(FIXTURES)) for t in TREES}
    assert {"gpu/node", "gpu-node-2s8g", "tuning-2s8g", "pci-hgx-8gpu-4nvswitch", "pci-none"} <= names


def test_garbage_in_sysfs_is_unknown_to_all_three(tmp_path: Path) -> None:
    worker_view, tuning_view, scope_view = consumers(garbage_tree(tmp_path))
    assert worker_view == tuning_view == [(None, frozenset()), (1, frozenset({4, 5, 6, 7}))]
    assert scope_view == [(), ()]
