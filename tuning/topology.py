"""GPU → NUMA node → CPU topology from sysfs, and the inference CPU set.

`read_topology` is the one place the tuning engine learns where GPUs are: from the
GPU topology API (collectors/gpu/topology.py: NVML, else sysfs), with NUMA nodes
and SMT siblings from `/sys/devices/system/node` and `/sys/devices/system/cpu`.
Its result type is what the rest of tuning depends on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from agent.paths import Paths
from tuning.cpulist import format_cpulist, parse_cpulist
from tuning.settings import TuningSettings


@dataclass(frozen=True)
class PciGpu:
    bdf: str
    numa_node: int | None
    local_cpus: frozenset[int]


@dataclass(frozen=True)
class Topology:
    nodes: dict[int, frozenset[int]]  # NUMA node -> CPUs
    gpus: tuple[PciGpu, ...] = ()
    siblings: dict[int, frozenset[int]] = field(default_factory=dict)  # CPU -> SMT siblings

    @property
    def all_cpus(self) -> frozenset[int]:
        return frozenset().union(*self.nodes.values()) if self.nodes else frozenset()

    @property
    def gpu_nodes(self) -> frozenset[int]:
        return frozenset(g.numa_node for g in self.gpus if g.numa_node is not None)

    @property
    def gpu_local_cpus(self) -> frozenset[int]:
        return frozenset().union(*(g.local_cpus for g in self.gpus)) if self.gpus else frozenset()



def read_topology(paths: Paths) -> Topology:
    nodes = _read_nodes(paths)
    return Topology(nodes=nodes, gpus=tuple(_gpus(paths, nodes)), siblings=_read_siblings(paths, nodes))


def _gpus(paths: Paths, nodes: dict[int, frozenset[int]]) -> list[PciGpu]:
    """GPUs from the GPU topology API; a GPU without local_cpulist gets its node's CPUs."""
    from collectors.gpu.topology import gpu_topology

    out = []
    for g in gpu_topology(paths):
        cpus = frozenset(g.local_cpus) or (nodes.get(g.numa_node, frozenset()) if g.numa_node is not None else frozenset())
        out.append(PciGpu(g.pci_bus_id, g.numa_node, cpus))
    return out


def _read_nodes(paths: Paths) -> dict[int, frozenset[int]]:
    base = paths.sys("devices", "system", "node")
    nodes: dict[int, frozenset[int]] = {}
    if base.is_dir():
        for d in base.iterdir():
            m = re.fullmatch(r"node(\d+)", d.name)
            if m and (d / "cpulist").exists():
                nodes[int(m.group(1))] = parse_cpulist((d / "cpulist").read_text())
    if not nodes:
        # Kernels without NUMA report no node directories: one node with every CPU.
        online = paths.sys("devices", "system", "cpu", "online")
        nodes[0] = parse_cpulist(online.read_text()) if online.exists() else frozenset()
    return nodes


def _read_siblings(paths: Paths, nodes: dict[int, frozenset[int]]) -> dict[int, frozenset[int]]:
    out: dict[int, frozenset[int]] = {}
    for cpus in nodes.values():
        for cpu in cpus:
            f = paths.sys("devices", "system", "cpu", f"cpu{cpu}", "topology", "thread_siblings_list")
            out[cpu] = parse_cpulist(f.read_text()) if f.exists() else frozenset({cpu})
    return out


def pci_numa_node(paths: Paths, bdf: str) -> int | None:
    text = _read(paths.sys("bus", "pci", "devices", bdf, "numa_node"))
    # -1: the platform did not say (single-socket machines, many VMs).
    if text is None or int(text) < 0:
        return None
    return int(text)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def housekeeping_cpus(topo: Topology, settings: TuningSettings) -> frozenset[int]:
    """CPUs for IRQs, the agent and the OS: configured, or the first cores of each node."""
    if settings.housekeeping_cpus is not None:
        return parse_cpulist(settings.housekeeping_cpus)
    chosen: set[int] = set()
    for node in sorted(topo.nodes):
        cores = 0
        for cpu in sorted(topo.nodes[node]):
            if cores >= settings.housekeeping_cores_per_node:
                break
            if cpu in chosen:
                continue
            chosen.update(topo.siblings.get(cpu, frozenset({cpu})) | {cpu})
            cores += 1
    return frozenset(chosen)


def inference_cpus(topo: Topology, settings: TuningSettings) -> frozenset[int]:
    """GPU-local CPUs minus housekeeping; every CPU minus housekeeping without GPUs."""
    base = topo.gpu_local_cpus or topo.all_cpus
    return base - housekeeping_cpus(topo, settings)


def inference_cpuset(paths: Paths, settings: TuningSettings) -> dict[str, object]:
    """The inference CPU set and how it was derived, for the worker unit and `tune cpuset`."""
    topo = read_topology(paths)
    hk = housekeeping_cpus(topo, settings)
    cpus = inference_cpus(topo, settings)
    mems = sorted({n for n, node_cpus in topo.nodes.items() if node_cpus & cpus})
    return {
        "cpus": format_cpulist(cpus),
        "mems": format_cpulist(mems),
        "housekeeping_cpus": format_cpulist(hk),
        "gpu_numa_nodes": format_cpulist(topo.gpu_nodes),
        "gpus": [g.bdf for g in topo.gpus],
    }
