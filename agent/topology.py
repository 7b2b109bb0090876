"""The host's placement topology, from sysfs: NUMA nodes and their CPUs, SMT
siblings, NVIDIA GPUs in PCI bus order and PCI network interfaces, each with its
NUMA node and local CPUs.

The one answer to "which CPUs belong to which GPU", shared by everything that
places work by GPU: the worker supervisor's pinning, the tuning engine's
inference CPU set, and (through the GPU collector, which adds NVML's identities)
the span scope of the tracing. Rules, the same for all of them:

- GPUs are the NVIDIA display/3D controllers on PCI, indexed in bus order
  (CUDA_DEVICE_ORDER=PCI_BUS_ID numbering, NVML's default enumeration order).
- A device's NUMA node is its `numa_node`; -1 (single-socket hosts, many VMs),
  garbage or no file at all mean "unknown" (None).
- A device's local CPUs are its `local_cpulist`; when that is absent, empty or
  garbage, the CPUs of its NUMA node; with no node either, none.
- A kernel without NUMA reports no node directories: one node 0 with every
  online CPU.

Reading is separate from the rules: `parse_numa_node` and `agent.cpulist` are
pure, and `read_host_topology` does the I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.cpulist import CpuListError, format_cpulist, parse_cpulist
from agent.hostfs import read_if_readable
from agent.paths import Paths

NVIDIA_VENDOR = "0x10de"
# PCI class codes: VGA controller 0x0300xx, 3D controller 0x0302xx.
GPU_CLASSES = ("0x0300", "0x0302")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str  # "" when NVML is not available
    pci_bus_id: str  # sysfs form, "0000:18:00.0"
    numa_node: int | None  # None: no NUMA information (single node, or unknown)
    local_cpus: tuple[int, ...] = ()
    model_name: str = ""
    source: str = "nvml"  # nvml | sysfs
    # The GPU's own memory as a NUMA node (coherent platforms such as Grace Hopper):
    # it has no CPUs, so numa_node above stays the CPU-local node.
    memory_node: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "local_cpus": list(self.local_cpus),
                "local_cpulist": format_cpulist(self.local_cpus)}


@dataclass(frozen=True)
class NicInfo:
    name: str
    pci_bus_id: str
    numa_node: int | None
    local_cpus: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "local_cpus": list(self.local_cpus),
                "local_cpulist": format_cpulist(self.local_cpus)}


@dataclass(frozen=True)
class NodeTopology:
    """GPUs (as NVML or sysfs names them) and NICs: what `infernode topology` shows
    and the span scope asks the GPU collector for."""

    gpus: list[GpuInfo]
    nics: list[NicInfo]

    def to_json(self) -> dict[str, Any]:
        return {"gpus": [g.to_json() for g in self.gpus], "nics": [n.to_json() for n in self.nics]}

    def gpus_on_node(self, numa_node: int) -> list[GpuInfo]:
        return [g for g in self.gpus if g.numa_node == numa_node]


@dataclass(frozen=True)
class HostTopology:
    nodes: dict[int, frozenset[int]]  # NUMA node -> CPUs
    gpus: tuple[GpuInfo, ...] = ()
    siblings: dict[int, frozenset[int]] = field(default_factory=dict)  # CPU -> its SMT siblings
    nics: tuple[NicInfo, ...] = ()

    @property
    def all_cpus(self) -> frozenset[int]:
        return frozenset().union(*self.nodes.values()) if self.nodes else frozenset()

    @property
    def gpu_nodes(self) -> frozenset[int]:
        return frozenset(g.numa_node for g in self.gpus if g.numa_node is not None)

    @property
    def gpu_local_cpus(self) -> frozenset[int]:
        return frozenset().union(*(g.local_cpus for g in self.gpus)) if self.gpus else frozenset()

    def gpu(self, index: int) -> GpuInfo | None:
        return self.gpus[index] if 0 <= index < len(self.gpus) else None


# --- pure -------------------------------------------------------------------------


def parse_numa_node(text: str | None) -> int | None:
    """A sysfs `numa_node`; None when the platform does not say (-1), the file is
    absent, or it holds garbage."""
    if text is None:
        return None
    text = text.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 6:
        return None
    v = int(text)
    return None if v < 0 else v


def parse_local_cpus(text: str | None) -> frozenset[int] | None:
    """A sysfs `local_cpulist`; None when absent, empty or garbage (the caller then
    falls back to the device's node)."""
    if text is None:
        return None
    try:
        cpus = parse_cpulist(text)
    except CpuListError:
        return None
    return cpus or None


def local_cpus(numa_node: int | None, own: frozenset[int] | None,
               nodes: dict[int, frozenset[int]]) -> tuple[int, ...]:
    """A device's local CPUs: its own list, else its node's, else none."""
    if own:
        return tuple(sorted(own))
    if numa_node is not None:
        return tuple(sorted(nodes.get(numa_node, frozenset())))
    return ()


# --- reading sysfs ----------------------------------------------------------------


def _read(paths: Paths, *parts: str) -> str | None:
    return read_if_readable(paths.sys(*parts))


def read_nodes(paths: Paths) -> dict[int, frozenset[int]]:
    base = paths.sys("devices", "system", "node")
    nodes: dict[int, frozenset[int]] = {}
    if base.is_dir():
        for d in sorted(base.iterdir()):
            m = re.fullmatch(r"node(\d+)", d.name)
            if m:
                cpus = parse_local_cpus(_read(paths, "devices", "system", "node", d.name, "cpulist"))
                if cpus is not None:
                    nodes[int(m.group(1))] = cpus
    if not nodes:
        online = parse_local_cpus(_read(paths, "devices", "system", "cpu", "online"))
        nodes[0] = online or frozenset()
    return nodes


def read_siblings(paths: Paths, nodes: dict[int, frozenset[int]]) -> dict[int, frozenset[int]]:
    out: dict[int, frozenset[int]] = {}
    for cpus in nodes.values():
        for cpu in cpus:
            text = _read(paths, "devices", "system", "cpu", f"cpu{cpu}", "topology", "thread_siblings_list")
            out[cpu] = parse_local_cpus(text) or frozenset({cpu})
    return out


def pci_numa_and_cpus(paths: Paths, bdf: str,
                      nodes: dict[int, frozenset[int]] | None = None) -> tuple[int | None, tuple[int, ...]]:
    """A PCI device's NUMA node and local CPUs (see the rules above). Without
    `nodes`, a device with no local_cpulist of its own gets no CPUs."""
    numa = parse_numa_node(_read(paths, "bus", "pci", "devices", bdf, "numa_node"))
    own = parse_local_cpus(_read(paths, "bus", "pci", "devices", bdf, "local_cpulist"))
    return numa, local_cpus(numa, own, nodes or {})


def possible_cpus(paths: Paths) -> int:
    cpus = parse_local_cpus(_read(paths, "devices", "system", "cpu", "possible"))
    return (max(cpus) + 1) if cpus else (os.cpu_count() or 1)


def gpu_addresses(paths: Paths) -> list[str]:
    """The NVIDIA GPUs' PCI addresses in bus order (index = position)."""
    root = paths.sys("bus", "pci", "devices")
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir(), key=lambda p: p.name):
        vendor = _read(paths, "bus", "pci", "devices", d.name, "vendor")
        cls = _read(paths, "bus", "pci", "devices", d.name, "class")
        if vendor and cls and vendor.strip().lower() == NVIDIA_VENDOR and cls.strip().lower().startswith(GPU_CLASSES):
            out.append(d.name)
    return out


def sysfs_gpus(paths: Paths, nodes: dict[int, frozenset[int]] | None = None) -> list[GpuInfo]:
    nodes = read_nodes(paths) if nodes is None else nodes
    out = []
    for i, bdf in enumerate(gpu_addresses(paths)):
        numa, cpus = pci_numa_and_cpus(paths, bdf, nodes)
        out.append(GpuInfo(i, "", bdf, numa, cpus, source="sysfs"))
    return out


def nic_topology(paths: Paths, nodes: dict[int, frozenset[int]] | None = None) -> list[NicInfo]:
    """Network interfaces backed by a PCI device (virtual ones have no NUMA node)."""
    net = paths.sys("class", "net")
    if not net.is_dir():
        return []
    nodes = read_nodes(paths) if nodes is None else nodes
    out = []
    for d in sorted(net.iterdir(), key=lambda p: p.name):
        dev = d / "device"
        if not dev.exists():
            continue
        bdf = os.path.basename(os.path.realpath(dev))
        if bdf.count(":") != 2:
            continue  # not a PCI function (e.g. a virtio bus device without a PCI parent link)
        numa = parse_numa_node(_read(paths, "class", "net", d.name, "device", "numa_node"))
        own = parse_local_cpus(_read(paths, "class", "net", d.name, "device", "local_cpulist"))
        out.append(NicInfo(d.name, bdf, numa, local_cpus(numa, own, nodes)))
    return out


def read_host_topology(paths: Paths) -> HostTopology:
    nodes = read_nodes(paths)
    return HostTopology(nodes=nodes, gpus=tuple(sysfs_gpus(paths, nodes)), siblings=read_siblings(paths, nodes),
                        nics=tuple(nic_topology(paths, nodes)))
