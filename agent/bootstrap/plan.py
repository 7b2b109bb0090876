"""The plan: for each pinned component, what is installed, what is pinned, and what
apply would do (install / upgrade / downgrade / hold / nothing), plus whether the
result needs a reboot. Pure: it takes detection and package state as data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agent.bootstrap.detect import Detection
from agent.bootstrap.manifest import Manifest, Pin, pins
from agent.bootstrap.packages import Installed
from agent.bootstrap.versions import compare_debian, compare_rpm

Action = Literal["install", "upgrade", "downgrade", "hold", "nothing"]
CHANGES = ("install", "upgrade", "downgrade")


@dataclass
class Row:
    component: str
    package: str
    installed: str | None
    pinned: str
    held: bool
    action: Action
    reboot: bool


@dataclass
class Plan:
    rows: list[Row]
    reboot_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pins: list[Pin] = field(default_factory=list)

    @property
    def changes(self) -> list[Row]:
        return [r for r in self.rows if r.action in CHANGES]

    @property
    def converged(self) -> bool:
        return all(r.action == "nothing" for r in self.rows)

    def to_json(self, detection: Detection | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "converged": self.converged,
            "components": [asdict(r) for r in self.rows],
            "reboot_required": bool(self.reboot_reasons),
            "reboot_reasons": self.reboot_reasons,
            "notes": self.notes,
        }
        if detection is not None:
            out["detection"] = detection.to_json()
        return out


def comparator(family: str) -> Callable[[str, str], int]:
    return compare_rpm if family == "rhel" else compare_debian


def decide(installed: Installed | None, pinned: str, cmp: Callable[[str, str], int]) -> Action:
    if installed is None:
        return "install"
    c = cmp(installed.version, pinned)
    if c < 0:
        return "upgrade"
    if c > 0:
        return "downgrade"
    return "nothing" if installed.held else "hold"


def compute_plan(manifest: Manifest, det: Detection, installed: dict[str, Installed]) -> Plan:
    family = det.os.family
    cmp = comparator(family)
    wanted = pins(manifest, len(det.nvswitches))
    rows: list[Row] = []
    reasons: list[str] = []
    notes: list[str] = []
    want_module = manifest.driver.upstream
    # A new kernel module cannot replace one in use without unloading it (every CUDA
    # process, persistenced, fabric manager): a reboot is the reliable way.
    module_busy = det.nvidia_module is not None and det.nvidia_module != want_module
    for pin in wanted:
        version = pin.dnf_version if family == "rhel" and pin.dnf_version else pin.version
        cur = installed.get(pin.package)
        action = decide(cur, version, cmp)
        reboot = pin.kernel and action in CHANGES and (module_busy or det.nouveau_loaded)
        rows.append(Row(pin.component, pin.package, cur.version if cur else None, version,
                        bool(cur and cur.held), action, reboot))
    if det.nouveau_loaded:
        reasons.append("nouveau is loaded: it must be blacklisted and unloaded before the nvidia module can bind the GPUs")
    if det.nvidia_module is not None and det.nvidia_module != want_module:
        reasons.append(f"loaded nvidia module is {det.nvidia_module}, pinned driver is {want_module}")
    if det.nvidia_module is not None and det.nvidia_module_open is not None:
        want_open = manifest.driver.kernel_modules == "open"
        if det.nvidia_module_open != want_open:
            reasons.append(f"loaded nvidia module is {'open' if det.nvidia_module_open else 'proprietary'}, "
                           f"manifest wants {manifest.driver.kernel_modules}")
    if det.kernel and not det.kernel_headers:
        notes.append(f"headers for the running kernel {det.kernel} are not installed: DKMS cannot build the nvidia module")
    fm = manifest.fabric_manager
    if fm is not None and fm.when == "auto" and not det.nvswitches:
        notes.append("fabric manager skipped: no NVSwitches on PCI")
    if not det.gpus:
        notes.append("no NVIDIA GPU found on PCI")
    return Plan(rows, reasons, notes, wanted)


def format_plan(plan: Plan) -> str:
    head = ("COMPONENT", "PACKAGE", "INSTALLED", "PINNED", "ACTION", "REBOOT")
    body = [(r.component, r.package, (r.installed or "-") + (" (held)" if r.held else ""), r.pinned, r.action,
             "yes" if r.reboot else "no") for r in plan.rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in [head, *body]]
    for r in plan.reboot_reasons:
        lines.append(f"reboot required: {r}")
    for n in plan.notes:
        lines.append(f"note: {n}")
    lines.append("converged: nothing to do" if plan.converged else
                 f"{len(plan.changes)} package change(s), {sum(r.action == 'hold' for r in plan.rows)} hold(s)")
    return "\n".join(lines)
