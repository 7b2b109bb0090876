"""GPU topology as NVML sees it: each GPU's identity (index, UUID, model) with its
NUMA node and local CPUs, for `infernode topology` and the span scope.

    gpu_topology(paths, nvml=None) -> list[GpuInfo]
    node_topology(paths, nvml=None) -> NodeTopology (GPUs and NICs)

NVML answers index, UUID, bus id, name and nvmlDeviceGetCpuAffinity. The CPU-local
NUMA node is sysfs's (the GPU's numa_node), else nvmlDeviceGetMemoryAffinity's
one nearest node; nvmlDeviceGetNumaNodeId names the GPU's own memory node on
coherent platforms (shared/reference/nvml-dcgm.md, D4) and is kept apart as
memory_node. The host topology (agent/topology.py, sysfs) fills what NVML cannot
say. Without NVML (no driver, or a fixture root) the GPUs are the host
topology's, without UUIDs.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

from agent.paths import Paths
from agent.topology import GpuInfo, NodeTopology, nic_topology, pci_numa_and_cpus, possible_cpus, read_nodes, sysfs_gpus
from agent.untyped import Nvml
from collectors.gpu.fields import normalize_bus_id

log = logging.getLogger("infernode.topology")


def cpus_from_mask_words(words: Sequence[int]) -> list[int]:
    """nvmlDeviceGetCpuAffinity's array of 64-bit masks (word 0 = CPUs 0..63) -> CPUs."""
    return [w * 64 + b for w, word in enumerate(words) for b in range(64) if word >> b & 1]


def nvml_gpus(paths: Paths, nvml: Nvml) -> list[GpuInfo]:
    """GPUs as NVML sees them, sysfs filling in what NVML does not answer.
    Raises NvmlUnavailable when NVML cannot be initialised."""
    from collectors.gpu.nvml_reader import NvmlReader

    reader = NvmlReader(nvml)
    reader.init()
    try:
        ncpus = possible_cpus(paths)
        nodes = read_nodes(paths)
        out = []
        for dev in reader.discover():
            bdf = normalize_bus_id(dev.pci_bus_id)
            numa, sys_cpus = pci_numa_and_cpus(paths, bdf, nodes)
            if numa is None:
                near = reader.nearest_memory_nodes(dev, max(nodes, default=0) + 1)
                numa = near[0] if near and len(near) == 1 else None
            words = reader.cpu_affinity_words(dev, ncpus)
            cpus = tuple(cpus_from_mask_words(words)) if words else ()
            out.append(GpuInfo(dev.index, dev.uuid, bdf, numa, cpus or sys_cpus, dev.name,
                               memory_node=reader.memory_numa_node(dev)))
        return out
    finally:
        reader.shutdown()


def gpu_topology(paths: Paths, nvml: Nvml = None) -> list[GpuInfo]:
    """Each GPU's NUMA node and local CPUs. With `nvml` (the pynvml module) NVML
    is asked; with None, pynvml is imported when `paths` is the real root (NVML
    only ever describes the running host), else sysfs alone is read."""
    from collectors.gpu.nvml_reader import NvmlUnavailable

    if nvml is None and paths.is_real_root():
        try:
            nvml = importlib.import_module("pynvml")  # only when topology is asked for
        except ImportError:
            nvml = None
    if nvml is not None:
        try:
            return nvml_gpus(paths, nvml)
        except NvmlUnavailable as e:
            log.info("NVML unavailable (%s); GPU topology from sysfs", e.reason)
    return sysfs_gpus(paths)


def node_topology(paths: Paths, nvml: Nvml = None) -> NodeTopology:
    return NodeTopology(gpu_topology(paths, nvml), nic_topology(paths))
