"""Whether a GPU's PCIe link runs below what the GPU itself can do.

NVML's "max" generation and width are what is "possible with this device and
system": a x16 GPU in a x8 slot reads max 8, so `current < max` never shows the
classic faults (a x8 slot or riser, a Gen5 GPU on a Gen4 path;
shared/reference/nvml-dcgm.md D5). The GPU's own capability is
nvmlDeviceGetGpuMaxPcieLinkGeneration and, for both generation and width, the
GPU function's Link Capabilities in sysfs (max_link_speed, max_link_width). The
upstream port's capabilities say whether the slot or the training is to blame.

Links downshift at idle to save power, so a verdict is only taken while the GPU
is busy (see GpuSettings.pcie_min_utilization) and held until the next busy pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.paths import Paths

# "32.0 GT/s PCIe" (or "32 GT/s" on older kernels) -> generation.
_GEN_OF_GTS = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}
_BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def parse_link_speed(text: str | None) -> int | None:
    """sysfs max_link_speed -> PCIe generation, None for "Unknown" or garbage."""
    if not text:
        return None
    m = re.match(r"\s*([0-9.]+)\s*GT/s", text)
    if not m:
        return None
    try:
        return _GEN_OF_GTS.get(float(m.group(1)))
    except ValueError:
        return None


def parse_link_width(text: str | None) -> int | None:
    try:
        w = int((text or "").strip())
    except ValueError:
        return None
    return w if 0 < w <= 32 else None


@dataclass(frozen=True)
class LinkCaps:
    """Link capabilities from sysfs: the GPU function's and its upstream port's."""
    gen: int | None = None
    width: int | None = None
    upstream_gen: int | None = None
    upstream_width: int | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_link_caps(paths: Paths, bdf: str) -> LinkCaps:
    dev = paths.sys("bus", "pci", "devices", bdf)
    try:
        real = dev.resolve(strict=True)
    except OSError:
        return LinkCaps()
    up = real.parent
    up_gen = up_width = None
    if _BDF.match(up.name):  # a bridge or switch port, not the root bus (pci0000:00)
        up_gen = parse_link_speed(_read(up / "max_link_speed"))
        up_width = parse_link_width(_read(up / "max_link_width"))
    return LinkCaps(parse_link_speed(_read(real / "max_link_speed")),
                    parse_link_width(_read(real / "max_link_width")), up_gen, up_width)


def degraded(current_gen: float | None, current_width: float | None,
             device_gen: float | None, device_width: float | None) -> bool | None:
    """Whether the link trained below the GPU's own capability; None when unknown."""
    checks = [(c, m) for c, m in ((current_gen, device_gen), (current_width, device_width))
              if c is not None and m is not None]
    if not checks:
        return None
    return any(c < m for c, m in checks)
