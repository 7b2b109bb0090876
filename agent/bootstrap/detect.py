"""What the node has: NVIDIA GPUs and NVSwitches on PCI, the OS, the running kernel
and its headers, the loaded nvidia module, and whether nouveau is loaded.

PCI devices come from pyudev on a real root. libudev only accepts a /sys that is a
mounted sysfs (it checks the filesystem magic), so on a fixture root the same
attributes are read from the tree under Paths; both feed `classify`, which holds all
the decisions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.hostfs import read_if_readable
from agent.paths import Paths
from agent.untyped import Udev

NVIDIA_VENDOR = 0x10DE
# PCI base class 0x03 (display): 0x0300 VGA, 0x0302 3D controller (data-centre GPUs).
GPU_CLASSES = (0x0300, 0x0302)
# NVSwitches enumerate as "bridge, other" (0x0680).
NVSWITCH_CLASS = 0x0680


@dataclass(frozen=True)
class PciDevice:
    bdf: str
    kind: Literal["gpu", "nvswitch"]
    device_id: int
    numa_node: int | None = None


def classify(bdf: str, vendor: int, device_id: int, pci_class: int, numa_node: int | None = None) -> PciDevice | None:
    """A GPU or NVSwitch from NVIDIA, or None; `pci_class` is the 24-bit class code."""
    if vendor != NVIDIA_VENDOR:
        return None
    base_sub = pci_class >> 8
    if base_sub in GPU_CLASSES:
        return PciDevice(bdf, "gpu", device_id, numa_node)
    if base_sub == NVSWITCH_CLASS:
        return PciDevice(bdf, "nvswitch", device_id, numa_node)
    return None


def _int(text: str | bytes | None, base: int = 16) -> int | None:
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def classify_attributes(bdf: str, attrs: Mapping[str, Any]) -> PciDevice | None:
    """From sysfs attribute file contents (vendor, device, class, numa_node)."""
    vendor, device, cls = _int(attrs.get("vendor")), _int(attrs.get("device")), _int(attrs.get("class"))
    if vendor is None or device is None or cls is None:
        return None
    numa = _int(attrs.get("numa_node"), 10)
    return classify(bdf, vendor, device, cls, numa if numa is not None and numa >= 0 else None)


def classify_uevent(props: Mapping[str, str]) -> PciDevice | None:
    """From uevent properties (PCI_ID=10DE:2330, PCI_CLASS=30200, PCI_SLOT_NAME); a
    removal event carries only these, the sysfs files are already gone."""
    pci_id, cls, bdf = props.get("PCI_ID"), props.get("PCI_CLASS"), props.get("PCI_SLOT_NAME")
    if not pci_id or cls is None or not bdf or ":" not in pci_id:
        return None
    vendor, device = (_int(x) for x in pci_id.split(":", 1))
    code = _int(cls)
    if vendor is None or device is None or code is None:
        return None
    return classify(bdf, vendor, device, code)


PCI_ATTRS = ("vendor", "device", "class", "numa_node")


def pci_from_udev(context: Udev = None) -> list[PciDevice]:
    import pyudev

    ctx = context or pyudev.Context()
    out = []
    for dev in ctx.list_devices(subsystem="pci"):
        attrs = {a: dev.attributes.get(a) for a in PCI_ATTRS}
        d = classify_attributes(dev.sys_name, attrs)
        if d:
            out.append(d)
    return sorted(out, key=lambda d: d.bdf)


def pci_from_sysfs(paths: Paths) -> list[PciDevice]:
    base = paths.sys("bus", "pci", "devices")
    if not base.is_dir():
        return []
    out = []
    for entry in sorted(base.iterdir()):
        attrs: dict[str, str | None] = {}
        for a in PCI_ATTRS:
            try:
                attrs[a] = (entry / a).read_text()
            except OSError:
                attrs[a] = None
        d = classify_attributes(entry.name, attrs)
        if d:
            out.append(d)
    return out


def detect_pci(paths: Paths) -> list[PciDevice]:
    return pci_from_udev() if paths.is_real_root() else pci_from_sysfs(paths)


@dataclass(frozen=True)
class OsInfo:
    id: str
    version_id: str
    family: Literal["debian", "rhel", "unknown"]


def parse_os_release(text: str) -> OsInfo:
    kv: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and not k.startswith("#"):
            kv[k.strip()] = v.strip().strip('"').strip("'")
    ids = [kv.get("ID", "")] + kv.get("ID_LIKE", "").split()
    family: Literal["debian", "rhel", "unknown"] = "unknown"
    if any(i in ("debian", "ubuntu") for i in ids):
        family = "debian"
    elif any(i in ("rhel", "fedora", "centos", "rocky", "almalinux") for i in ids):
        family = "rhel"
    return OsInfo(kv.get("ID", "unknown"), kv.get("VERSION_ID", ""), family)


_NVRM_RE = re.compile(r"NVRM version:.*?Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)")


def parse_nvidia_proc_version(text: str) -> tuple[str, bool] | None:
    """(version, open kernel module?) from /proc/driver/nvidia/version."""
    m = _NVRM_RE.search(text)
    if not m:
        return None
    return m.group(1), "Open Kernel Module" in m.group(0)


def parse_modules(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines() if line.strip()}


@dataclass
class Detection:
    os: OsInfo
    kernel: str | None
    kernel_headers: bool
    pci: list[PciDevice] = field(default_factory=list)
    nvidia_module: str | None = None
    nvidia_module_open: bool | None = None
    nouveau_loaded: bool = False

    @property
    def gpus(self) -> list[PciDevice]:
        return [d for d in self.pci if d.kind == "gpu"]

    @property
    def nvswitches(self) -> list[PciDevice]:
        return [d for d in self.pci if d.kind == "nvswitch"]

    def to_json(self) -> dict[str, Any]:
        return {
            "os": {"id": self.os.id, "version_id": self.os.version_id, "family": self.os.family},
            "kernel": self.kernel, "kernel_headers": self.kernel_headers,
            "gpus": [d.bdf for d in self.gpus], "nvswitches": [d.bdf for d in self.nvswitches],
            "nvidia_module": self.nvidia_module, "nvidia_module_open": self.nvidia_module_open,
            "nouveau_loaded": self.nouveau_loaded,
        }


def _read(paths: Paths, path: str) -> str | None:
    return read_if_readable(paths.host(path))


def headers_installed(paths: Paths, kernel: str) -> bool:
    return paths.host(f"/lib/modules/{kernel}/build").is_dir() or paths.host(f"/usr/src/linux-headers-{kernel}").is_dir()


def detect(paths: Paths, pci: Iterable[PciDevice] | None = None) -> Detection:
    os_text = _read(paths, "/etc/os-release") or _read(paths, "/usr/lib/os-release") or ""
    kernel = (_read(paths, "/proc/sys/kernel/osrelease") or "").strip() or None
    nv = parse_nvidia_proc_version(_read(paths, "/proc/driver/nvidia/version") or "")
    modules = parse_modules(_read(paths, "/proc/modules") or "")
    return Detection(
        os=parse_os_release(os_text),
        kernel=kernel,
        kernel_headers=kernel is not None and headers_installed(paths, kernel),
        pci=list(pci) if pci is not None else detect_pci(paths),
        nvidia_module=nv[0] if nv else None,
        nvidia_module_open=nv[1] if nv else None,
        nouveau_loaded="nouveau" in modules,
    )
