"""The host's placement topology: each GPU's and NIC's NUMA node and local CPUs.

Pure data, shared by everything that places work by GPU: the worker supervisor's
pinning, the tuning engine's inference CPU set and the span scope of the tracing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agent.cpulist import format_cpulist


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str  # "" when NVML is not available
    pci_bus_id: str  # sysfs form, "0000:18:00.0"
    numa_node: int | None  # None: no NUMA information (single node, or unknown)
    local_cpus: list[int] = field(default_factory=list)
    model_name: str = ""
    source: str = "nvml"  # nvml | sysfs

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "local_cpulist": format_cpulist(self.local_cpus)}


@dataclass(frozen=True)
class NicInfo:
    name: str
    pci_bus_id: str
    numa_node: int | None
    local_cpus: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "local_cpulist": format_cpulist(self.local_cpus)}


@dataclass(frozen=True)
class NodeTopology:
    gpus: list[GpuInfo]
    nics: list[NicInfo]

    def to_json(self) -> dict[str, Any]:
        return {"gpus": [g.to_json() for g in self.gpus], "nics": [n.to_json() for n in self.nics]}

    def gpus_on_node(self, numa_node: int) -> list[GpuInfo]:
        return [g for g in self.gpus if g.numa_node == numa_node]
