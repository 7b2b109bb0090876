"""Verify: is the node running what the manifest pins? Read-only; each check passes
or fails with its reason. Output parsers are pure and tested on captured outputs.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from agent.bootstrap.detect import Detection
from agent.bootstrap.manifest import Manifest, pins
from agent.bootstrap.packages import Runner
from agent.untyped import Nvml

SMI_QUERY = ["nvidia-smi", "--query-gpu=index,pci.bus_id,driver_version,persistence_mode", "--format=csv,noheader"]
NVCC_PATHS = ("/usr/local/cuda/bin/nvcc", "nvcc")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class SmiGpu:
    index: int
    bus_id: str
    driver_version: str
    persistence: bool


def parse_smi_csv(text: str) -> list[SmiGpu]:
    """Rows of `nvidia-smi --query-gpu=index,pci.bus_id,driver_version,persistence_mode`."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        out.append(SmiGpu(int(parts[0]), parts[1], parts[2], parts[3].lower() == "enabled"))
    return out


_NVCC_RE = re.compile(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)")


def parse_nvcc_version(text: str) -> tuple[str, str] | None:
    """(release, full version) from `nvcc --version`: 'release 13.0, V13.0.88'."""
    m = _NVCC_RE.search(text)
    return (m.group(1), m.group(2)) if m else None


def normalise_bus_id(bus_id: str) -> str:
    """nvidia-smi prints 00000000:18:00.0 (8-digit domain); sysfs 0000:18:00.0."""
    dom, _, rest = bus_id.lower().partition(":")
    return f"{int(dom, 16):04x}:{rest}" if rest else bus_id.lower()


def nvml_count(nvml: Nvml) -> tuple[int | None, str]:
    """GPU count through NVML (init, count, shutdown), or None and why not."""
    try:
        nvml.nvmlInit()
    except Exception as e:  # noqa: BLE001 - each NVML error code is its own class
        return None, f"NVML init failed: {e}"
    try:
        return nvml.nvmlDeviceGetCount(), "NVML initialised"
    finally:
        nvml.nvmlShutdown()


@dataclass
class Observations:
    """What verify saw; `evaluate` judges it, so the judging is testable on fixtures."""

    smi: tuple[int, str]  # exit status, output
    nvcc: tuple[str, str] | None  # (path, output) of the first nvcc that ran
    nvml: tuple[int | None, str]
    services: dict[str, tuple[bool, str]]  # unit -> (active?, state text)


def wanted_services(manifest: Manifest, det: Detection) -> list[str]:
    units = ["nvidia-persistenced.service"]
    if any(p.component == "fabric_manager" for p in pins(manifest, len(det.nvswitches))):
        units.append("nvidia-fabricmanager.service")
    return units


def observe(manifest: Manifest, det: Detection, runner: Runner, nvml: Nvml | None = None) -> Observations:
    smi = _run(runner, SMI_QUERY)
    nvcc = None
    for path in NVCC_PATHS:
        rc, out = _run(runner, [path, "--version"])
        if rc == 0:
            nvcc = (path, out)
            break
    if not runner.live and nvml is None:
        count: tuple[int | None, str] = (None, f"not checked: {runner.root} is not the running system")
    else:
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")  # NVML only when verifying
            except ImportError as e:
                nvml = None
                count = (None, f"nvidia-ml-py not importable: {e}")
        if nvml is not None:
            count = nvml_count(nvml)
    services = {}
    for unit in wanted_services(manifest, det):
        if not runner.live:
            enabled = runner.systemctl("is-enabled", unit, check=False).stdout.strip() or "unknown"
            services[unit] = (False, f"{enabled}; active state unknown: {runner.root} is not the running system")
            continue
        p = runner.systemctl("is-active", unit, check=False)
        state = p.stdout.strip() or "unknown"
        services[unit] = (p.returncode == 0 and state == "active", state)
    return Observations(smi, nvcc, count, services)


def evaluate(manifest: Manifest, det: Detection, obs: Observations) -> list[Check]:
    checks: list[Check] = []
    want = manifest.driver.upstream
    pci_gpus = len(det.gpus)
    checks.append(Check("gpus_on_pci", pci_gpus > 0,
                        f"{pci_gpus} NVIDIA GPU(s), {len(det.nvswitches)} NVSwitch(es) on PCI"))

    if det.nvidia_module is None:
        checks.append(Check("driver_loaded", False, "nvidia kernel module not loaded (/proc/driver/nvidia/version absent)"))
    else:
        flavour = "open" if det.nvidia_module_open else "proprietary"
        ok = det.nvidia_module == want and (det.nvidia_module_open is None or flavour == manifest.driver.kernel_modules)
        checks.append(Check("driver_loaded", ok, f"loaded {det.nvidia_module} ({flavour}), pinned {want} "
                                                 f"({manifest.driver.kernel_modules})"))

    rc, out = obs.smi
    if rc != 0:
        checks.append(Check("nvidia_smi", False, f"nvidia-smi failed: {out.strip()[-300:] or 'not found'}"))
        checks.append(Check("persistence_mode", False, "unknown: nvidia-smi did not run"))
    else:
        rows = parse_smi_csv(out)
        versions = sorted({r.driver_version for r in rows})
        checks.append(Check("nvidia_smi", bool(rows) and versions == [want],
                            f"{len(rows)} GPU(s), driver {', '.join(versions) or '?'}, pinned {want}"))
        off = [normalise_bus_id(r.bus_id) for r in rows if not r.persistence]
        checks.append(Check("persistence_mode", bool(rows) and not off,
                            "enabled on all GPUs" if rows and not off else
                            f"disabled on {', '.join(off)}" if off else "no GPUs listed"))

    count, why = obs.nvml
    if count is None:
        checks.append(Check("nvml", False, why))
    else:
        checks.append(Check("nvml", count == pci_gpus, f"NVML sees {count} GPU(s), PCI has {pci_gpus}"))

    release = manifest.cuda_toolkit.release
    if obs.nvcc is None:
        checks.append(Check("nvcc", False, f"nvcc not found ({', '.join(NVCC_PATHS)}); pinned toolkit {release}"))
    else:
        path, text = obs.nvcc
        got = parse_nvcc_version(text)
        checks.append(Check("nvcc", bool(got and got[0] == release),
                            f"nvcc release {got[0] if got else '?'} ({path}), pinned {release}"))

    for unit, (active, state) in obs.services.items():
        checks.append(Check(f"service:{unit}", active, state))
    return checks


def verify(manifest: Manifest, det: Detection, runner: Runner, nvml: Nvml | None = None) -> list[Check]:
    return evaluate(manifest, det, observe(manifest, det, runner, nvml))


def _run(runner: Runner, argv: list[str]) -> tuple[int, str]:
    try:
        p = runner.run(argv, check=False)
    except OSError as e:
        return 127, str(e)
    return p.returncode, (p.stdout or "") + (p.stderr or "" if p.returncode else "")


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'PASS' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.detail}" for c in checks)
