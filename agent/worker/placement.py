"""Where a worker runs: the CPUs and NUMA nodes local to its GPUs.

SysfsPlacement reads the PCI tree: NVIDIA devices in bus order
(CUDA_DEVICE_ORDER=PCI_BUS_ID numbering), their `numa_node` and `local_cpulist`,
optionally narrowed to the inference CPU set the tuning subsystem publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent import cpulist
from agent.paths import Paths
from collectors.gpu.topology import sysfs_gpus


@dataclass(frozen=True)
class Placement:
    cpus: tuple[int, ...] = ()
    numa_nodes: tuple[int, ...] = ()


def parse_cpulist(text: str) -> tuple[int, ...]:
    """"0-3,8,10-11" -> (0, 1, 2, 3, 8, 10, 11); empty text -> ()."""
    return tuple(cpulist.parse_cpulist(text))


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


class SysfsPlacement:
    def __init__(self, paths: Paths, inference_cpus: Sequence[int] | None = None) -> None:
        self.paths = paths
        self.inference_cpus = inference_cpus

    def gpu_addresses(self) -> list[str]:
        return [g.pci_bus_id for g in sysfs_gpus(self.paths)]

    def placement(self, gpus: Sequence[int]) -> Placement:
        found = sysfs_gpus(self.paths)
        cpus: set[int] = set()
        nodes: set[int] = set()
        for index in gpus:
            if index >= len(found):
                continue
            g = found[index]
            local = g.local_cpus
            # numa_node -1 (None here): the platform does not say (single-socket hosts, some VMs).
            if g.numa_node is not None:
                nodes.add(g.numa_node)
                if not local:
                    local = cpulist.parse_cpulist(
                        _read(self.paths.sys("devices", "system", "node", f"node{g.numa_node}", "cpulist")))
            cpus.update(local)
        return narrow(Placement(tuple(sorted(cpus)), tuple(sorted(nodes))), self.inference_cpus)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
