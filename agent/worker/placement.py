"""Where a worker runs: the CPUs and NUMA nodes local to its GPUs.

From the host topology (agent/topology.py): NVIDIA devices in bus order
(CUDA_DEVICE_ORDER=PCI_BUS_ID numbering) with their NUMA node and local CPUs,
optionally narrowed to the inference CPU set the tuning subsystem publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent import cpulist
from agent.paths import Paths
from agent.topology import HostTopology, read_nodes, sysfs_gpus


@dataclass(frozen=True)
class Placement:
    cpus: tuple[int, ...] = ()
    numa_nodes: tuple[int, ...] = ()


def format_cpulist(cpus: Sequence[int]) -> str:
    """(0, 1, 2, 3, 8) -> "0-3 8": ranges, space separated, as systemd writes them."""
    return cpulist.format_cpulist(cpus, sep=" ")


def narrow(placement: Placement, allowed_cpus: Sequence[int] | None) -> Placement:
    """Keep only CPUs in the inference set; when that leaves none (a GPU whose
    local CPUs are all reserved for housekeeping), keep the inference set itself
    rather than unpinning the worker."""
    if not allowed_cpus:
        return placement
    allowed = set(allowed_cpus)
    cpus = tuple(c for c in placement.cpus if c in allowed) or tuple(sorted(allowed))
    return Placement(cpus, placement.numa_nodes)


def placement_of(topo: HostTopology, gpus: Sequence[int]) -> Placement:
    """The union of the GPUs' local CPUs and NUMA nodes; an index the host does not
    have adds nothing."""
    cpus: set[int] = set()
    nodes: set[int] = set()
    for index in gpus:
        g = topo.gpu(index)
        if g is None:
            continue
        if g.numa_node is not None:
            nodes.add(g.numa_node)
        cpus.update(g.local_cpus)
    return Placement(tuple(sorted(cpus)), tuple(sorted(nodes)))


class SysfsPlacement:
    def __init__(self, paths: Paths, inference_cpus: Sequence[int] | None = None) -> None:
        self.paths = paths
        self.inference_cpus = inference_cpus

    def placement(self, gpus: Sequence[int]) -> Placement:
        # Nodes and GPUs only: the SMT siblings and NICs of the full host topology
        # are one file per CPU and per interface that pinning does not use.
        nodes = read_nodes(self.paths)
        topo = HostTopology(nodes=nodes, gpus=tuple(sysfs_gpus(self.paths, nodes)))
        return narrow(placement_of(topo, gpus), self.inference_cpus)
