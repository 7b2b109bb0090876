"""The tuning loop inside the daemon: verify every `tuning.verify_interval` and
on udev events for NICs and CPUs (hotplug, link changes), export
`infernode_tuning_in_desired_state{tunable,target}`, put `tuning_drift` events in
the EventStore and, in enforce mode, re-apply.

At start, an unfinished run's saved originals (the agent died mid-apply) are
restored first; enforce mode then applies the profile. In enforce mode the daemon
holds /dev/cpu_dma_latency open; the cap is released when the daemon stops. Other
knobs stay as applied after a stop (`infernode tune rollback` restores them).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent.doctor_row import DoctorRow
from agent.events import NODE, AttrValue, Event, now_ns
from agent.paths import Paths

if TYPE_CHECKING:
    from tuning.engine import Engine, Row
    from tuning.tunables.cpu import LatencyHolder
from agent.runtime import off_loop
from agent.samples import Sample
from agent.subsystem import Subsystem, SubsystemContext
from agent.untyped import Udev
from tuning.settings import TuningConfig
from tuning.specs import (
    TUNING_IN_DESIRED_STATE,
    TUNING_LAST_VERIFY_TIMESTAMP_SECONDS,
    TUNING_PENDING_REBOOT,
    TUNING_REAPPLIED_TOTAL,
    TUNING_SPECS,
)

log = logging.getLogger("infernode.tuning")


class TuningSubsystem(Subsystem[TuningConfig]):
    name = "tuning"
    specs = TUNING_SPECS

    def __init__(self, ctx: SubsystemContext[TuningConfig]) -> None:
        super().__init__(ctx)
        self.settings = ctx.config.tuning
        self._cpuset: tuple[int, ...] | None = None
        self.engine: Engine | None = None
        self.holder: LatencyHolder | None = None
        self.error: str | None = None
        self.in_state: dict[tuple[str, str], int] = {}
        # Boot parameters: (tunable, target) -> 1 written but not booted, 0 booted.
        self.pending_reboot: dict[tuple[str, str], int] = {}
        # Drift is a state: (tunable, target) -> (detected ns, its attributes) while it
        # lasts; written to the event store as one interval when it ends, and offered
        # to the correlation as an open window until then (services.tuning_open_events).
        self._drift: dict[tuple[str, str], tuple[int, dict[str, AttrValue]]] = {}
        self._drift_lock = threading.Lock()
        self.reapplied = 0
        self.last_verify: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._monitors: list[Udev] = []

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        # Both read sysfs and the profile: off the loop, like every blocking read here.
        await off_loop(self._prepare)
        if self.engine is not None:
            await off_loop(self._startup)
        # For the correlation: drift still open is context of every request inside it.
        self.ctx.services.tuning_open_events = self.open_events
        self._task = asyncio.create_task(self._loop())
        self._watch_udev()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        # Nobody watches the knobs any more: what drift is open ends here.
        self._end_drift(set(), now_ns())
        self.ctx.services.withdraw(self)
        for monitor in self._monitors:
            asyncio.get_running_loop().remove_reader(monitor.fileno())
        self._monitors = []
        if self.holder is not None:
            self.holder.release()

    async def reload(self, config: TuningConfig) -> None:
        if self.holder is not None:
            self.holder.release()
        self.settings = config.tuning
        await off_loop(self._prepare)
        if self.engine is not None:
            # The new profile or mode takes effect now, not at the next interval.
            await off_loop(self._startup)

    def _prepare(self) -> None:
        self._publish_cpuset()
        self._build()

    def _publish_cpuset(self) -> None:
        """The inference CPU set, for the worker supervisor's CPUAffinity=."""
        from agent.topology import read_host_topology
        from tuning.topology import inference_cpus

        try:
            cpus = inference_cpus(read_host_topology(self.ctx.paths), self.settings)
        except (OSError, ValueError) as e:
            log.warning("inference CPU set unavailable: %s", e)
            self._cpuset = None
            return
        self._cpuset = tuple(sorted(cpus))
        self.ctx.services.tuning_inference_cpus = self.inference_cpus

    def inference_cpus(self) -> tuple[int, ...] | None:
        """The inference CPU set of the applied profile; None when it cannot be read."""
        return self._cpuset

    def _build(self) -> None:
        from tuning.engine import build_engine
        from tuning.profiles import ProfileError
        from tuning.tunables.cpu import LatencyHolder

        # audit never changes the host, and holding the latency cap is a change.
        self.holder = LatencyHolder(self.ctx.paths) if self.settings.mode == "enforce" else None
        try:
            self.engine = build_engine(self.ctx.paths, self.settings, holder=self.holder,
                                       source=str(self.ctx.config_path or "config"))
            self.error = None
        except ProfileError as e:
            self.engine = None
            self.error = str(e)
            log.error("tuning disabled: %s", e)

    def _startup(self) -> None:
        from tuning.engine import EngineError, recover

        engine = self.engine
        if engine is None:
            return
        try:
            restored = recover(engine)
            if restored:
                log.warning("restored %d knob(s) left by an unfinished tuning run", len(restored))
            if self.settings.mode == "enforce":
                changed, _ = engine.apply()
                if changed:
                    self._applied_event(engine, len(changed))
        except EngineError as e:
            self.error = str(e)
            log.error("tuning: %s", e)
        self.verify_once()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.verify_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            if self.engine is not None:
                try:
                    await off_loop(self.verify_once)
                except Exception:  # noqa: BLE001 - the loop outlives one bad round
                    log.exception("tuning verify failed")

    def _watch_udev(self) -> None:
        # udev reports the host's devices; a fixture root has none to report.
        if not self.ctx.paths.is_real_root():
            return
        try:
            import pyudev
        except ImportError:
            return
        loop = asyncio.get_running_loop()
        # The kernel's event comes first and needs no udevd; udev's comes after its
        # rules ran (an interface renamed to its predictable name): verify on both.
        for source in ("kernel", "udev"):
            try:
                monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source=source)
                monitor.filter_by("net")
                monitor.filter_by("cpu")
                monitor.start()
            except (OSError, ValueError) as e:
                log.info("no %s events for tuning (%s)", source, e)
                continue

            def readable(monitor: Udev = monitor) -> None:
                while monitor.poll(timeout=0) is not None:
                    pass
                self._wake.set()

            loop.add_reader(monitor.fileno(), readable)
            self._monitors.append(monitor)

    # -- one verification round ---------------------------------------------

    def verify_once(self) -> list[Row]:
        """Verify (and in enforce mode re-apply); returns the drifted rows seen."""
        from tuning.engine import ERROR, OK, PENDING, SET, EngineError

        # One engine for the round, whatever a reload does meanwhile.
        engine = self.engine
        if engine is None:
            return []
        rows = engine.plan()
        drift = [r for r in rows if r.action in (SET, ERROR)]
        now = now_ns()
        with self._drift_lock:
            for r in drift:
                self._drift.setdefault((r.tunable, r.target), (now, {
                    "tunable": r.tunable, "target": r.target,
                    "current": "" if r.current is None else r.current, "desired": r.desired,
                }))
        if drift and self.settings.mode == "enforce":
            try:
                changed, _ = engine.apply()
                self.reapplied += len(changed)
                if changed:
                    self._applied_event(engine, len(changed))
                    log.warning("re-applied %d drifted knob(s)", len(changed))
                rows = engine.plan()
            except EngineError as e:
                log.error("tuning re-apply failed: %s", e)
        self._end_drift({(r.tunable, r.target) for r in rows if r.action in (SET, ERROR)}, now_ns())
        self.in_state = {(r.tunable, r.target): int(r.action == OK)
                         for r in rows if r.action in (OK, SET, ERROR, PENDING)}
        self.pending_reboot = {(r.tunable, r.target): int(r.action == PENDING)
                               for r in rows if r.knob is not None and r.knob.takes_effect_at_boot}
        self.last_verify = time.time()
        return drift

    def _end_drift(self, still: set[tuple[str, str]], end_ns: int) -> None:
        """Write each drift that is over (repaired, or no longer watched) as one
        interval from its detection to `end_ns`."""
        with self._drift_lock:
            over = [(key, v) for key, v in self._drift.items() if key not in still]
            for key, _ in over:
                del self._drift[key]
        for _, (start, attrs) in over:
            self.ctx.events.add(Event(start, max(start, end_ns), "tuning_drift", NODE, 1.0, attrs))

    def open_events(self) -> list[Event]:
        """Drift windows still open, ending now (not yet in the event store)."""
        now = now_ns()
        with self._drift_lock:
            return [Event(start, now, "tuning_drift", NODE, 1.0, {**attrs, "state": "open"})
                    for start, attrs in self._drift.values()]

    def _applied_event(self, engine: Engine, changed: int) -> None:
        now = now_ns()
        self.ctx.events.add(Event(now, now, "tuning_applied", NODE, float(changed),
                                  {"profile": engine.profile.name, "changed": changed}))

    # -- exposition and doctor ----------------------------------------------

    @classmethod
    def doctor_offline(cls, config: TuningConfig, paths: Paths) -> list[DoctorRow]:
        """`infernode doctor` without a daemon: the profile loads, and drift."""
        from tuning.engine import ERROR, PENDING, SET, build_engine
        from tuning.profiles import ProfileError

        try:
            engine = build_engine(paths, config.tuning)
        except ProfileError as e:
            return [DoctorRow("tuning", "profile", "fail", str(e), "fix the profile or tuning.overrides")]
        rows = engine.plan()
        drift = [r for r in rows if r.action in (SET, ERROR)]
        pending = [r for r in rows if r.action == PENDING]
        out = [_pending_row(pending)] if pending else []
        if not drift:
            return [*out, DoctorRow("tuning", "drift", "ok", f"profile {engine.profile.name} in desired state")]
        return [*out, DoctorRow("tuning", "drift", "warn",
                                f"{len(drift)} knob(s) not in the desired state: {summarize(drift)}",
                                "`infernode tune plan` to see them, `infernode tune apply` to fix")]

    def samples(self) -> Iterable[Sample]:
        for (tunable, target), value in sorted(self.in_state.items()):
            yield TUNING_IN_DESIRED_STATE.sample(value, tunable=tunable, target=target)
        for (tunable, target), value in sorted(self.pending_reboot.items()):
            yield TUNING_PENDING_REBOOT.sample(value, tunable=tunable, target=target)
        yield TUNING_REAPPLIED_TOTAL.sample(self.reapplied)
        if self.last_verify is not None:
            yield TUNING_LAST_VERIFY_TIMESTAMP_SECONDS.sample(self.last_verify)

    def doctor(self) -> Iterable[DoctorRow]:
        if self.error:
            yield DoctorRow("tuning", "profile", "fail", self.error,
                            "fix the profile or tuning.overrides, then reload (SIGHUP)")
            return
        pending = {k for k, v in self.pending_reboot.items() if v}
        if pending:
            yield _pending_row(sorted(pending))
        drifted = sorted(k for k, v in self.in_state.items() if not v and k not in pending)
        if drifted:
            yield DoctorRow("tuning", "drift", "warn", f"{len(drifted)} knob(s) drifted: {summarize(drifted)}",
                            "`infernode tune apply`, or set tuning.mode: enforce")
        else:
            yield DoctorRow("tuning", "drift", "ok", f"profile {self.settings.profile} in desired state")


def _pending_row(pending: Iterable[Row | tuple[str, str]]) -> DoctorRow:
    keys = list(pending)
    return DoctorRow("tuning", "pending reboot", "warn",
                     f"{len(keys)} boot parameter(s) written, not yet booted: {summarize(keys)}",
                     "reboot the node in its maintenance window (infernode never reboots)")


def summarize(keys: Iterable[Row | tuple[str, str]]) -> str:
    """"vm.swappiness system, cpu.governor (32 targets)": one entry per tunable."""
    from tuning.engine import Row

    by_name: dict[str, list[str]] = {}
    for k in keys:
        tunable, target = (k.tunable, k.target) if isinstance(k, Row) else k
        by_name.setdefault(tunable, []).append(target)
    return ", ".join(f"{n} {t[0]}" if len(t) == 1 else f"{n} ({len(t)} targets)" for n, t in by_name.items())
