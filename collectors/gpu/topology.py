"""Node topology for placement: each GPU's and NIC's NUMA node and local CPUs.

Pure data out, for the tuning engine and the worker supervisor:

    gpu_topology(paths, nvml=None) -> list[GpuInfo]
    nic_topology(paths) -> list[NicInfo]
    parse_cpulist("0-7,16-23") -> [0, ..., 7, 16, ..., 23]

GPUs come from NVML (index, UUID, bus id, nvmlDeviceGetNumaNodeId,
nvmlDeviceGetCpuAffinity) with sysfs /sys/bus/pci/devices/<bdf>/{numa_node,
local_cpulist} filling what NVML cannot say. Without NVML (no driver, or a
fixture root) GPUs are the NVIDIA display/3D controllers on PCI, indexed in bus
order (NVML's default enumeration order) and without UUIDs. NICs are the
interfaces under /sys/class/net backed by a PCI device.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence

from agent.cpulist import parse_cpulist
from agent.paths import Paths
from agent.topology import GpuInfo, NicInfo, NodeTopology
from agent.untyped import Nvml
from collectors.gpu.fields import normalize_bus_id

log = logging.getLogger("infernode.topology")

NVIDIA_VENDOR = "0x10de"
# PCI class codes: VGA controller 0x0300xx, 3D controller 0x0302xx.
GPU_CLASSES = ("0x0300", "0x0302")


def cpus_from_mask_words(words: Sequence[int]) -> list[int]:
    """nvmlDeviceGetCpuAffinity's array of 64-bit masks (word 0 = CPUs 0..63) -> CPUs."""
    return [w * 64 + b for w, word in enumerate(words) for b in range(64) if word >> b & 1]


def parse_numa_node(text: str) -> int | None:
    """None when the platform does not say (-1: single-socket hosts, many VMs) or
    the file is unreadable garbage."""
    text = text.strip()
    if not text.lstrip("-").isdigit():
        return None
    v = int(text)
    return None if v < 0 else v


def _read(paths: Paths, *parts: str) -> str | None:
    try:
        return paths.sys(*parts).read_text()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def pci_numa_and_cpus(paths: Paths, bdf: str) -> tuple[int | None, list[int]]:
    numa = _read(paths, "bus", "pci", "devices", bdf, "numa_node")
    cpus = _read(paths, "bus", "pci", "devices", bdf, "local_cpulist")
    return (parse_numa_node(numa) if numa else None), (parse_cpulist(cpus) if cpus else [])


def possible_cpus(paths: Paths) -> int:
    text = _read(paths, "devices", "system", "cpu", "possible")
    cpus = parse_cpulist(text) if text else []
    return (max(cpus) + 1) if cpus else (os.cpu_count() or 1)


def sysfs_gpus(paths: Paths) -> list[GpuInfo]:
    root = paths.sys("bus", "pci", "devices")
    if not root.is_dir():
        return []
    bdfs = []
    for d in sorted(root.iterdir(), key=lambda p: p.name):
        vendor = _read(paths, "bus", "pci", "devices", d.name, "vendor")
        cls = _read(paths, "bus", "pci", "devices", d.name, "class")
        if vendor and cls and vendor.strip().lower() == NVIDIA_VENDOR and cls.strip().lower().startswith(GPU_CLASSES):
            bdfs.append(d.name)
    out = []
    for i, bdf in enumerate(bdfs):
        numa, cpus = pci_numa_and_cpus(paths, bdf)
        out.append(GpuInfo(i, "", bdf, numa, cpus, source="sysfs"))
    return out


def nvml_gpus(paths: Paths, nvml: Nvml) -> list[GpuInfo]:
    """GPUs as NVML sees them, sysfs filling in what NVML does not answer.
    Raises NvmlUnavailable when NVML cannot be initialised."""
    from collectors.gpu.nvml_reader import NvmlReader

    reader = NvmlReader(nvml)
    reader.init()
    try:
        ncpus = possible_cpus(paths)
        out = []
        for dev in reader.discover():
            bdf = normalize_bus_id(dev.pci_bus_id)
            sys_numa, sys_cpus = pci_numa_and_cpus(paths, bdf)
            numa = reader.numa_node(dev)
            words = reader.cpu_affinity_words(dev, ncpus)
            cpus = cpus_from_mask_words(words) if words else []
            out.append(GpuInfo(
                dev.index, dev.uuid, bdf, numa if numa is not None else sys_numa, cpus or sys_cpus, dev.name,
            ))
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


def nic_topology(paths: Paths) -> list[NicInfo]:
    """Network interfaces backed by a PCI device (virtual ones have no NUMA node)."""
    net = paths.sys("class", "net")
    if not net.is_dir():
        return []
    out = []
    for d in sorted(net.iterdir(), key=lambda p: p.name):
        dev = d / "device"
        if not dev.exists():
            continue
        bdf = os.path.basename(os.path.realpath(dev))
        if bdf.count(":") != 2:
            continue  # not a PCI function (e.g. a virtio bus device without a PCI parent link)
        numa = _read(paths, "class", "net", d.name, "device", "numa_node")
        cpus = _read(paths, "class", "net", d.name, "device", "local_cpulist")
        out.append(NicInfo(d.name, bdf, parse_numa_node(numa) if numa else None,
                           parse_cpulist(cpus) if cpus else []))
    return out


def node_topology(paths: Paths, nvml: Nvml = None) -> NodeTopology:
    return NodeTopology(gpu_topology(paths, nvml), nic_topology(paths))
