"""The bootstrap part of the daemon: exports whether each pinned component is in its
desired state, and notices GPUs appearing on or leaving PCI.

Package state comes from dpkg-query / rpm, subprocesses, so it is refreshed in a
worker thread every `bootstrap.refresh_interval` and on GPU hotplug; a scrape only
reads the last result. The daemon never installs anything: that is
`infernode bootstrap apply`, run by an operator or a fleet tool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.bootstrap.plan import Row
from agent.bootstrap.settings import BootstrapConfig, BootstrapSettings
from agent.bootstrap.specs import (
    BOOTSTRAP_COMPONENT_INFO,
    BOOTSTRAP_IN_DESIRED_STATE,
    BOOTSTRAP_LAST_CHECK_TIMESTAMP_SECONDS,
    BOOTSTRAP_PCI_DEVICES,
    BOOTSTRAP_SPECS,
)
from agent.doctor_row import DoctorRow
from agent.events import NODE, Event, now_ns
from agent.paths import Paths
from agent.runtime import off_loop
from agent.samples import Sample
from agent.subsystem import Subsystem, SubsystemContext
from agent.untyped import Udev

log = logging.getLogger("infernode.bootstrap")


def uevent_to_event(action: str, props: Mapping[str, str], ts_ns: int) -> Event | None:
    """A gpu_added / gpu_removed event for an NVIDIA GPU's PCI add/remove uevent."""
    from agent.bootstrap.detect import classify_uevent

    if action not in ("add", "remove"):
        return None
    dev = classify_uevent(props)
    if dev is None or dev.kind != "gpu":
        return None
    kind = "gpu_added" if action == "add" else "gpu_removed"
    return Event(ts_ns, ts_ns, kind, NODE, 1.0, {"pci_bus_id": dev.bdf, "device_id": f"0x{dev.device_id:04x}"})


@dataclass
class State:
    rows: list[Row] = field(default_factory=list)
    pci_counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def compare_with_manifest(settings: BootstrapSettings, paths: Paths) -> State:
    from agent.bootstrap.detect import detect
    from agent.bootstrap.manifest import ManifestError, load_manifest, pins
    from agent.bootstrap.packages import PackageError, Runner, backend_for
    from agent.bootstrap.plan import compute_plan

    try:
        manifest = load_manifest(settings.manifest, tuple(settings.overrides))
        det = detect(paths)
        backend = backend_for(det.os.family, Runner(paths.root))
        wanted = [p.package for p in pins(manifest, len(det.nvswitches))]
        plan = compute_plan(manifest, det, backend.installed(wanted))
    except (ManifestError, PackageError, OSError) as e:
        return State(error=str(e))
    return State(plan.rows, {"gpu": len(det.gpus), "nvswitch": len(det.nvswitches)})


def doctor_rows(state: State, settings: BootstrapSettings) -> list[DoctorRow]:
    if state.error:
        return [DoctorRow("bootstrap", "manifest", "warn", state.error,
                          f"write {settings.manifest} (see examples/manifest.yaml)")]
    off = [r.component for r in state.rows if r.action != "nothing"]
    if off:
        return [DoctorRow("bootstrap", "components", "warn", "not in desired state: " + ", ".join(off),
                          "run `infernode bootstrap plan`, then `infernode bootstrap apply`")]
    if state.rows:
        return [DoctorRow("bootstrap", "components", "ok", f"{len(state.rows)} components at pinned versions")]
    return []


class BootstrapSubsystem(Subsystem[BootstrapConfig]):
    name = "bootstrap"
    specs = BOOTSTRAP_SPECS

    def __init__(self, ctx: SubsystemContext[BootstrapConfig]) -> None:
        super().__init__(ctx)
        self.settings = ctx.config.bootstrap
        self.rows: list[Row] = []
        self.pci_counts: dict[str, int] = {}
        self.error: str | None = None
        self.last_check: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._monitor: Udev = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())
        self._watch_pci()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._monitor is not None:
            asyncio.get_running_loop().remove_reader(self._monitor.fileno())
            self._monitor = None

    async def reload(self, config: BootstrapConfig) -> None:
        self.settings = config.bootstrap
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await off_loop(self.refresh)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.refresh_interval)
            except TimeoutError:
                pass

    def refresh(self) -> None:
        """Compare the node with the manifest (blocking: runs dpkg-query or rpm)."""
        state = compare_with_manifest(self.settings, self.ctx.paths)
        self.error = state.error
        if state.error:
            self.rows = []
            log.warning("bootstrap state unknown: %s", state.error)
            return
        before = {r.component: r.installed for r in self.rows}
        for r in state.rows:
            # Only a change seen between two reads is an event, not the first read.
            if r.component in before and before[r.component] != r.installed:
                ts = now_ns()
                self.ctx.events.add(Event(ts, ts, "bootstrap_change", NODE, 1.0, {
                    "component": r.component, "version": r.installed or "", "previous": before[r.component] or ""}))
        self.rows = state.rows
        self.pci_counts = state.pci_counts
        self.last_check = time.time()

    @classmethod
    def doctor_offline(cls, config: BootstrapConfig, paths: Paths) -> list[DoctorRow]:
        """Rows for `infernode doctor` run without the daemon."""
        return doctor_rows(compare_with_manifest(config.bootstrap, paths), config.bootstrap)

    def samples(self) -> Iterable[Sample]:
        for r in self.rows:
            yield BOOTSTRAP_COMPONENT_INFO.sample(1.0, component=r.component,
                         installed=r.installed or "", pinned=r.pinned)
            yield BOOTSTRAP_IN_DESIRED_STATE.sample(1.0 if r.action == "nothing" else 0.0,
                         component=r.component)
        for kind, n in self.pci_counts.items():
            yield BOOTSTRAP_PCI_DEVICES.sample(float(n), kind=kind)
        if self.last_check is not None:
            yield BOOTSTRAP_LAST_CHECK_TIMESTAMP_SECONDS.sample(self.last_check)

    def doctor(self) -> Iterable[DoctorRow]:
        return doctor_rows(State(self.rows, self.pci_counts, self.error), self.settings)

    def on_uevent(self, action: str, props: Mapping[str, str]) -> Event | None:
        ev = uevent_to_event(action, props, now_ns())
        if ev is not None:
            self.ctx.events.add(ev)
            log.info("%s %s", ev.kind, ev.attributes["pci_bus_id"])
            self._wake.set()
        return ev

    def _watch_pci(self) -> None:
        # udev reports the host's devices; a fixture root has none to report.
        if not self.ctx.paths.is_real_root():
            return
        try:
            import pyudev

            # Kernel uevents carry PCI_ID/PCI_CLASS/PCI_SLOT_NAME themselves, so this
            # works without systemd-udevd and still describes a device already removed.
            monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel")
            monitor.filter_by("pci")
            monitor.start()
        except (ImportError, OSError, ValueError) as e:
            log.info("no PCI hotplug events (%s); GPU count refreshes every %ss", e, self.settings.refresh_interval)
            return

        def readable() -> None:
            while (dev := monitor.poll(timeout=0)) is not None:
                self.on_uevent(dev.action or "", dict(dev.properties))

        asyncio.get_running_loop().add_reader(monitor.fileno(), readable)
        self._monitor = monitor
