"""Where a worker runs: the CPUs and NUMA nodes local to its GPUs.

The supervisor asks a PlacementProvider; the daemon may publish a better one (the
GPU topology collector, the tuning engine's inference CPU set) under the services
name "worker.placement". Without one, SysfsPlacement reads the PCI tree: NVIDIA
devices in bus order (CUDA_DEVICE_ORDER=PCI_BUS_ID numbering), their `numa_node`
and `local_cpulist`, optionally narrowed to the inference CPU set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from agent.paths import Paths

NVIDIA_VENDOR = "0x10de"
# PCI class 0x03 (display): 0x0300 VGA, 0x0302 3D controller (datacenter GPUs).
_GPU_CLASSES = ("0x0300", "0x0302")


@dataclass(frozen=True)
class Placement:
    cpus: tuple[int, ...] = ()
    numa_nodes: tuple[int, ...] = ()


class PlacementProvider(Protocol):
    def placement(self, gpus: Sequence[int]) -> Placement: ...


def parse_cpulist(text: str) -> tuple[int, ...]:
    """"0-3,8,10-11" -> (0, 1, 2, 3, 8, 10, 11); empty text -> ()."""
    out: set[int] = set()
    text = text.strip()
    if not text:
        return ()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"not a CPU list: {text!r}")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ValueError(f"not a CPU list (descending range {part!r}): {text!r}")
        out.update(range(first, last + 1))
    return tuple(sorted(out))


def format_cpulist(cpus: Sequence[int]) -> str:
    """(0, 1, 2, 3, 8) -> "0-3 8": ranges, space separated, as systemd writes them."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return " ".join(parts)


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
        root = self.paths.sys("bus", "pci", "devices")
        if not root.is_dir():
            return []
        out = []
        for dev in sorted(root.iterdir(), key=lambda p: p.name):
            vendor = _read(dev / "vendor")
            cls = _read(dev / "class")
            if vendor == NVIDIA_VENDOR and cls[:6] in _GPU_CLASSES:
                out.append(dev.name)
        return out

    def placement(self, gpus: Sequence[int]) -> Placement:
        addresses = self.gpu_addresses()
        cpus: set[int] = set()
        nodes: set[int] = set()
        for index in gpus:
            if index >= len(addresses):
                continue
            dev = self.paths.sys("bus", "pci", "devices", addresses[index])
            node_text = _read(dev / "numa_node")
            local = parse_cpulist(_read(dev / "local_cpulist"))
            # -1: the platform does not say (single-socket hosts, some VMs).
            if node_text.lstrip("-").isdigit() and int(node_text) >= 0:
                node = int(node_text)
                nodes.add(node)
                if not local:
                    local = parse_cpulist(_read(self.paths.sys("devices", "system", "node", f"node{node}", "cpulist")))
            cpus.update(local)
        return narrow(Placement(tuple(sorted(cpus)), tuple(sorted(nodes))), self.inference_cpus)


def _read(path) -> str:  # noqa: ANN001 - a Path from Paths
    try:
        return path.read_text().strip()
    except OSError:
        return ""
