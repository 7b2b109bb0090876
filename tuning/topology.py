"""The inference CPU set: the GPUs' local CPUs less the housekeeping CPUs.

Where GPUs, NUMA nodes and SMT siblings are comes from the host topology
(agent/topology.py), the same model the worker supervisor pins by; this module
adds tuning's policy on top of it.
"""

from __future__ import annotations

from agent.cpulist import format_cpulist, parse_cpulist
from agent.paths import Paths
from agent.topology import HostTopology, read_host_topology
from tuning.settings import TuningSettings


def housekeeping_cpus(topo: HostTopology, settings: TuningSettings) -> frozenset[int]:
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


def inference_cpus(topo: HostTopology, settings: TuningSettings) -> frozenset[int]:
    """GPU-local CPUs minus housekeeping; every CPU minus housekeeping without GPUs."""
    base = topo.gpu_local_cpus or topo.all_cpus
    return base - housekeeping_cpus(topo, settings)


def inference_cpuset(paths: Paths, settings: TuningSettings) -> dict[str, object]:
    """The inference CPU set and how it was derived, for the worker unit and `tune cpuset`."""
    topo = read_host_topology(paths)
    hk = housekeeping_cpus(topo, settings)
    cpus = inference_cpus(topo, settings)
    mems = sorted({n for n, node_cpus in topo.nodes.items() if node_cpus & cpus})
    return {
        "cpus": format_cpulist(cpus),
        "mems": format_cpulist(mems),
        "housekeeping_cpus": format_cpulist(hk),
        "gpu_numa_nodes": format_cpulist(topo.gpu_nodes),
        "gpus": [g.pci_bus_id for g in topo.gpus],
    }
