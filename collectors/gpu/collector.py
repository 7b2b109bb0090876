"""The GPU collector: NVML polled off the scrape path, served from a cache.

A poll thread reads every GPU each `poll_interval` (utilization, memory, power,
clocks, throttle reasons, processes, ...) and each `slow_poll_interval` the
slowly changing or costly values (ECC, remapped rows, PCIe, NVLink errors, max
clocks). A scrape only reads the cache: a GPU whose last poll is older than
`max_age`, or which NVML reports lost, is served as `infernode_gpu_up 0` with no
values, never with stale ones. An event thread turns XID and ECC events into
counters and EventStore events; the poll turns throttle-reason and SM-clock
changes into `gpu_throttle` / `gpu_clock_drop` windows (see throttle.py).

Without a driver the collector says so once, serves `infernode_gpu_nvml_up 0`,
and retries nvmlInit every `init_retry_interval` (a bootstrap may install it).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import Field

from agent.catalog import MetricSpec
from agent.collector import Collector, CollectorContext, CollectorSettings, NoDataError
from agent.config_types import Duration
from agent.doctor_row import DoctorRow
from agent.events import Event, now_ns
from agent.samples import Sample
from agent.topology import NodeTopology, sysfs_gpus
from agent.untyped import Nvml
from agent.usage import GpuUsage
from collectors.gpu.events import EventThread
from collectors.gpu.fields import normalize_bus_id
from collectors.gpu.kmsg_follower import KmsgFollower
from collectors.gpu.lanes import DeviceLane
from collectors.gpu.nvml_reader import Device, GpuLost, NvmlReader, NvmlUnavailable, Reading
from collectors.gpu.pcie_link import LinkCaps, read_link_caps
from collectors.gpu.pcie_link import degraded as pcie_degraded
from collectors.gpu.process_memory import UnitResolver, memory_by_unit
from collectors.gpu.specs import (
    GPU_CACHE_AGE_SECONDS,
    GPU_COUNT,
    GPU_DRIVER_INFO,
    GPU_ENERGY_JOULES_TOTAL,
    GPU_EVENT_THREAD_UP,
    GPU_KERNEL_LOG_LOST_TOTAL,
    GPU_KERNEL_LOG_UP,
    GPU_NVML_UP,
    GPU_PCIE_LINK_DEGRADED,
    GPU_PCIE_LINK_GENERATION,
    GPU_PCIE_LINK_WIDTH,
    GPU_PROCESS_MEMORY_BYTES,
    GPU_READ_ERRORS_TOTAL,
    GPU_READ_STUCK,
    GPU_UP,
    GPU_UTILIZATION_RATIO,
    SPECS,
)
from collectors.gpu.throttle import ThrottleTracker
from collectors.gpu.topology import node_topology
from collectors.gpu.xid_intake import XidIntake


class GpuSettings(CollectorSettings):
    poll_interval: Duration = Field(1.0, gt=0)
    slow_poll_interval: Duration = Field(10.0, gt=0)
    # Older than this, a GPU's values are not served (a stuck NVML call, a dead poller).
    max_age: Duration = Field(5.0, gt=0)
    # A GPU whose read has run this long is reported stuck (infernode_gpu_read_stuck);
    # a poll pass waits at most this long for the GPUs' lanes.
    stuck_after: Duration = Field(5.0, gt=0)
    event_wait_timeout: Duration = Field(0.5, gt=0)
    # After a failed event wait; the event set is rebuilt after three in a row.
    event_retry_interval: Duration = Field(1.0, gt=0)
    throttle_segment: Duration = Field(5.0, gt=0)
    clock_drop_ratio: float = Field(0.10, gt=0, lt=1)
    process_memory: bool = True
    # The PCIe link is judged degraded or not only while the GPU is at least this busy.
    pcie_min_utilization: float = Field(0.3, ge=0, le=1)
    # Follow /dev/kmsg for NVRM XID and NVSwitch SXid lines (XIDs 79, 119 and 120
    # never reach NVML's event set).
    kernel_log: bool = True
    init_retry_interval: Duration = Field(60.0, gt=0)
    # What a GPU answered NOT_SUPPORTED is asked again this often, and at once when
    # its MIG mode or the driver changes.
    reprobe_interval: Duration = Field(300.0, gt=0)
    # How long the first scrape after start waits for the first poll to finish.
    first_poll_wait: Duration = Field(2.0, ge=0)


@dataclass
class _Cache:
    dev: Device
    tracker: ThrottleTracker
    fast: list[Sample] = field(default_factory=list)
    fast_at: float | None = None  # monotonic
    slow: list[Sample] = field(default_factory=list)
    slow_at: float | None = None
    lost: bool = False
    lane: DeviceLane | None = None
    link: LinkCaps = field(default_factory=LinkCaps)
    pcie_degraded: bool | None = None
    recovery_action: str | None = None
    mig_enabled: bool | None = None
    reprobe_due: bool = False
    pids: set[int] = field(default_factory=set)

    def stuck_for(self, now: float) -> float:
        """Seconds the GPU's current read has been inside NVML (0 when none runs)."""
        return self.lane.busy_for(now) if self.lane is not None else 0.0

    def state(self, now: float, s: GpuSettings) -> tuple[bool, bool]:
        """(fresh, stuck): fresh when its last read is within max_age and it is
        neither lost nor inside one call past stuck_after (not answering, whatever
        its age). Read under the collector's lock."""
        stuck = self.stuck_for(now) > s.stuck_after
        fresh = not self.lost and not stuck and self.fast_at is not None and now - self.fast_at <= s.max_age
        return fresh, stuck


def _value(readings: list[Reading], spec: MetricSpec, labels: tuple[tuple[str, str], ...]) -> float | None:
    return next((v for sp, lb, v in readings if sp is spec and lb == labels), None)


def _samples(dev: Device, readings: list[Reading]) -> list[Sample]:
    return [spec.emit(dev.labels_with(extra), value) for spec, extra, value in readings]


class GpuCollector(Collector):
    name = "gpu"
    specs = SPECS
    settings_model = GpuSettings

    def __init__(self, ctx: CollectorContext, nvml: Nvml = None) -> None:
        super().__init__(ctx)
        self.settings: GpuSettings = ctx.settings  # type: ignore[assignment]
        self._nvml = nvml
        self.reader: NvmlReader | None = None
        self._lock = threading.Lock()  # guards the caches the scrape reads
        self._poll_lock = threading.Lock()  # one poll pass at a time
        self._stop = threading.Event()
        self._first_pass = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: EventThread | None = None
        self._kmsg: KmsgFollower | None = None
        self._intake: XidIntake | None = None
        self._caches: list[_Cache] = []
        self._unavailable: NvmlUnavailable | None = NvmlUnavailable("NVML not initialised yet", "")
        self._last_init_try = -float("inf")
        self._driver = ("unknown", "unknown")
        self._last_pass_at: float | None = None
        self._resolver = UnitResolver(ctx.paths)
        self._index_by_uuid: dict[str, int] = {}

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        # nvmlInit and discovery run in the poll thread too: on a failing GPU they can
        # take seconds, and start() must not block the daemon.
        self._thread = threading.Thread(target=self._run, name="gpu-poll", daemon=True)
        self._thread.start()

    def wait_first_poll(self, timeout: float) -> bool:
        """Block until the poll thread has tried NVML once (and polled, if it could)."""
        return self._first_pass.wait(timeout)

    def stop(self) -> None:
        # Bounded waits throughout: the daemon's whole shutdown has 5 s, and an NVML
        # call can hang on a failing GPU.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._events is not None:
            self._events.stop()
        if self._kmsg is not None:
            self._kmsg.stop()
        t = now_ns()
        with self._lock:
            for c in self._caches:
                self.ctx.events.extend(c.tracker.close_all(t))
        if not self._poll_lock.acquire(timeout=1):
            self.ctx.log.warning("an NVML call is still running; leaving NVML initialised")
            return
        try:
            for c in self._caches:
                if c.lane is not None:
                    c.lane.stop()
            stuck = [c.dev.index for c in self._caches if c.lane is not None and c.lane.busy]
            if stuck:
                # nvmlShutdown under a call still running on another thread is not safe.
                self.ctx.log.warning("NVML calls still running on GPU(s) %s; leaving NVML initialised",
                                     ", ".join(map(str, stuck)))
                return
            if self.reader is not None and self._unavailable is None:
                for c in self._caches:
                    self.reader.release(c.dev)
                self.reader.shutdown()
                self._unavailable = NvmlUnavailable("collector stopped", "")
        finally:
            self._poll_lock.release()

    def _import_nvml(self) -> Nvml:
        if self._nvml is None:
            try:
                import pynvml  # noqa: PLC0415 - only when the collector starts
            except ImportError:
                raise NvmlUnavailable("the nvidia-ml-py package (module pynvml) is not installed",
                                      "reinstall infernode; nvidia-ml-py is one of its dependencies") from None
            self._nvml = pynvml
        return self._nvml

    def _try_open(self) -> None:
        self._last_init_try = time.monotonic()
        try:
            reader = NvmlReader(self._import_nvml())
            reader.init()
        except NvmlUnavailable as e:
            if self._unavailable is None or self._unavailable.reason != e.reason:
                self.ctx.log.info("no GPU telemetry: %s (%s)", e.reason, e.fix)
            self._unavailable = e
            return
        try:
            devices = reader.discover()
            driver = reader.driver_versions()
        except reader.nvml.NVMLError as e:
            reader.shutdown()
            self._unavailable = NvmlUnavailable(f"NVML could not enumerate GPUs: {e}", "check `nvidia-smi`")
            return
        s = self.settings
        caches = [
            _Cache(d, ThrottleTracker(f"gpu:{d.uuid}", s.throttle_segment, s.clock_drop_ratio),
                   link=read_link_caps(self.paths, normalize_bus_id(d.pci_bus_id)))
            for d in devices
        ]
        intake = XidIntake(devices, self.ctx.events)
        with self._lock:
            self.reader, self._caches, self._driver = reader, caches, driver
            self._intake = intake
            self._unavailable = None
        self._events = EventThread(reader, devices, intake.on_nvml_event,
                                   timeout_ms=max(1, int(s.event_wait_timeout * 1000)),
                                   retry_interval=s.event_retry_interval)
        if not self._events.start():
            self._events = None
        if s.kernel_log:
            follower = KmsgFollower(self.paths.dev("kmsg"), intake.on_kernel_line)
            self._kmsg = follower if follower.start() else None
        self._index_by_uuid = {d.uuid: d.index for d in devices}
        # For the correlation: throttle windows still open (see throttle.py).
        self.ctx.services.gpu_open_events = self.open_events
        # For the span scope: () -> NodeTopology, asked of this collector's NVML.
        self.ctx.services.gpu_topology = self.topology
        # For the worker supervisor: which worker a GPU event (subject gpu:<uuid>) hits.
        self.ctx.services.gpu_index_of_uuid = self.index_of_uuid
        # For the cost ledger: what each GPU did.
        self.ctx.services.gpu_usage = self.usage
        self.ctx.log.info("GPU telemetry: %d GPU(s), driver %s, CUDA %s", len(devices), *driver)

    def _run(self) -> None:
        next_slow = 0.0
        while not self._stop.is_set():
            if self._unavailable is not None:
                if time.monotonic() - self._last_init_try >= self.settings.init_retry_interval:
                    self._try_open()
            if self._unavailable is None:
                now = time.monotonic()
                slow = now >= next_slow
                try:
                    self.refresh(slow=slow)
                    if slow:
                        self._check_driver()
                except Exception:  # noqa: BLE001 - the poll thread must outlive any one pass
                    self.ctx.log.exception("GPU poll pass failed")
                if slow:
                    next_slow = now + self.settings.slow_poll_interval
            self._first_pass.set()
            self._stop.wait(self.settings.poll_interval)

    def _check_driver(self) -> None:
        """A driver that changed under a running agent (an upgrade without a reboot
        that NVML still answers for) may support what the old one did not."""
        reader = self.reader
        if reader is None:
            return
        driver = reader.driver_versions()
        with self._lock:
            if driver == self._driver or "unknown" in driver:
                return
            old, self._driver = self._driver, driver
            for c in self._caches:
                c.reprobe_due = True
        self.ctx.log.warning("NVIDIA driver changed from %s to %s; probing every GPU again", old[0], driver[0])

    # -- polling ----------------------------------------------------------------

    def refresh(self, slow: bool = True) -> None:
        """One poll pass over every GPU now (the poll thread's body). Each GPU is read
        in its own lane; the pass waits at most `stuck_after` for them, and a GPU whose
        lane is still inside an earlier read is skipped this pass (see lanes.py)."""
        with self._poll_lock:
            reader = self.reader
            if reader is None or self._unavailable is not None:
                return
            sent = []
            for c in self._caches:
                if c.lane is None:
                    c.lane = DeviceLane(f"gpu-read-{c.dev.index}")
                if c.lane.submit(functools.partial(self._poll_device, reader, c, slow)):
                    sent.append(c.lane)
            deadline = time.monotonic() + self.settings.stuck_after
            for lane in sent:
                while not lane.wait_idle(min(0.1, deadline - time.monotonic())):
                    if self._stop.is_set() or time.monotonic() >= deadline:
                        break
            with self._lock:
                live = set().union(*(c.pids for c in self._caches))
            self._resolver.forget_except(live)
            self._last_pass_at = time.monotonic()

    def _poll_device(self, reader: NvmlReader, c: _Cache, slow: bool) -> None:
        """Poll one GPU (in its lane); keeps the pids using it in c.pids."""
        dev = c.dev
        if c.lost and not slow:
            return  # a lost GPU is re-probed at the slow pace only
        t_ns = now_ns()
        if slow and (c.reprobe_due or time.monotonic() - dev.probed_at >= self.settings.reprobe_interval):
            c.reprobe_due = False
            try:
                reader.reprobe(dev)
            except Exception as e:  # noqa: BLE001 - probed again next time
                dev.read_errors += 1
                self.ctx.log.warning("GPU %d re-probe failed: %s: %s", dev.index, type(e).__name__, e)
        try:
            r = reader.read_fast(dev)
            slow_readings = reader.read_slow(dev) if slow or c.lost else None
        except GpuLost:
            self._mark_lost(c, t_ns)
            return
        except Exception as e:  # noqa: BLE001 - one device's failed read never ends the poll of the others
            # Counted, and this pass serves nothing new for it: its values go stale
            # (gpu_up 0 past max_age) while the other GPUs are read as usual.
            dev.read_errors += 1
            self.ctx.log.warning("GPU %d read failed: %s: %s", dev.index, type(e).__name__, e)
            return
        if slow_readings is not None:
            slow_readings = self._pcie_link(c, r.readings, slow_readings)
            if c.mig_enabled is not None and dev.mig_enabled != c.mig_enabled:
                self.ctx.log.info("GPU %d: MIG mode %s; probing what it supports again", dev.index,
                                  "on" if dev.mig_enabled else "off")
                c.reprobe_due = True
            c.mig_enabled = dev.mig_enabled
        fast = _samples(dev, r.readings)
        if self.settings.process_memory:
            for unit, used in sorted(memory_by_unit(self._resolver, r.processes).items()):
                fast.append(GPU_PROCESS_MEMORY_BYTES.emit(dev.labels_with((("unit", unit),)),
                                   float(used)))
        now = time.monotonic()
        with self._lock:
            events = c.tracker.update(t_ns, r.reasons_mask, r.sm_clock_hz)
            if r.recovery_action is not None and r.recovery_action != c.recovery_action:
                if c.recovery_action is not None or r.recovery_action != "none":
                    events.append(Event(t_ns, t_ns, "gpu_recovery_action", f"gpu:{dev.uuid}", 1.0,
                                        {"action": r.recovery_action, "previous": c.recovery_action or "unknown",
                                         "gpu": dev.index, "pci_bus_id": dev.pci_bus_id}))
                    self.ctx.log.warning("GPU %d (%s): NVIDIA's recovery action is now %s",
                                         dev.index, dev.uuid, r.recovery_action)
                c.recovery_action = r.recovery_action
            if c.lost:
                self.ctx.log.warning("GPU %d (%s) answers again", dev.index, dev.uuid)
                c.lost = False
            c.fast, c.fast_at = fast, now
            c.pids = {pid for pid, _ in r.processes}
            if slow_readings is not None:
                c.slow, c.slow_at = _samples(dev, slow_readings + dev.static), now
        self.ctx.events.extend(events)

    def _pcie_link(self, c: _Cache, fast: list[Reading], slow: list[Reading]) -> list[Reading]:
        """The sysfs link capabilities beside NVML's, and the degraded verdict, taken
        only while the GPU is busy (an idle link downshifts; pcie_link.py)."""
        link = c.link
        have = {(spec.name, labels) for spec, labels, _ in slow}
        extra: list[Reading] = []
        for spec, state, v in ((GPU_PCIE_LINK_GENERATION, "device_max", link.gen),
                               (GPU_PCIE_LINK_WIDTH, "device_max", link.width),
                               (GPU_PCIE_LINK_GENERATION, "upstream_max", link.upstream_gen),
                               (GPU_PCIE_LINK_WIDTH, "upstream_max", link.upstream_width)):
            if v is not None and (spec.name, (("state", state),)) not in have:
                extra.append((spec, (("state", state),), float(v)))
        out = slow + extra
        util = _value(fast, GPU_UTILIZATION_RATIO, (("engine", "gpu"),))
        if util is not None and util >= self.settings.pcie_min_utilization:
            verdict = pcie_degraded(
                _value(out, GPU_PCIE_LINK_GENERATION, (("state", "current"),)),
                _value(out, GPU_PCIE_LINK_WIDTH, (("state", "current"),)),
                _value(out, GPU_PCIE_LINK_GENERATION, (("state", "device_max"),)),
                _value(out, GPU_PCIE_LINK_WIDTH, (("state", "device_max"),)))
            if verdict is not None:
                c.pcie_degraded = verdict
        if c.pcie_degraded is not None:
            out.append((GPU_PCIE_LINK_DEGRADED, (), 1.0 if c.pcie_degraded else 0.0))
        return out

    def _mark_lost(self, c: _Cache, t_ns: int) -> None:
        with self._lock:
            was_lost, c.lost = c.lost, True
            c.fast, c.fast_at, c.slow, c.slow_at = [], None, [], None
            c.pids = set()
            closed = [] if was_lost else c.tracker.close_all(t_ns)
        if not was_lost:
            self.ctx.log.error("GPU %d (%s, %s) is lost: NVML reports GPU_IS_LOST",
                               c.dev.index, c.dev.uuid, c.dev.pci_bus_id)
            self.ctx.events.extend(closed)
            self.ctx.events.add(Event(t_ns, t_ns, "gpu_lost", f"gpu:{c.dev.uuid}", 1.0,
                                      {"gpu": c.dev.index, "pci_bus_id": c.dev.pci_bus_id}))

    def topology(self) -> NodeTopology:
        return node_topology(self.paths, self._nvml)

    def usage(self) -> dict[int, GpuUsage]:
        """Each GPU's model, utilization and energy counter from its latest read; a
        GPU whose read is stale, stuck or lost has neither value."""
        now = time.monotonic()
        out: dict[int, GpuUsage] = {}
        with self._lock:  # never held across an NVML call
            for c in self._caches:
                fresh, _ = c.state(now, self.settings)
                util = energy = None
                if fresh:
                    for s in c.fast:
                        if not isinstance(s.value, float):
                            continue
                        if s.name == GPU_UTILIZATION_RATIO.name and s.labels.get("engine") == "gpu":
                            util = s.value
                        elif s.name == GPU_ENERGY_JOULES_TOTAL.name:
                            energy = s.value
                out[c.dev.index] = GpuUsage(c.dev.name, util, energy)
        return out

    def index_of_uuid(self, uuid: str) -> int | None:
        return self._index_by_uuid.get(uuid)

    def open_events(self) -> list[Event]:
        """Throttle / clock-drop windows still open, ending now (not in the EventStore)."""
        t = now_ns()
        with self._lock:  # never held across an NVML call, so this cannot hang
            return [e for c in self._caches for e in c.tracker.open_events(t)]

    # -- scrape -------------------------------------------------------------------

    def collect(self) -> Iterable[Sample]:
        self.wait_first_poll(self.settings.first_poll_wait)
        now = time.monotonic()
        with self._lock:
            unavailable = self._unavailable
            caches = list(self._caches)
            driver = self._driver
            last_pass = self._last_pass_at
            snap = [(c, list(c.fast), list(c.slow), c.slow_at, *c.state(now, self.settings)) for c in caches]
            intake = self._intake
        if unavailable is not None:
            raise NoDataError(unavailable.reason, unavailable.fix,
                              samples=[GPU_NVML_UP.emit({}, 0.0)])
        out = [
            GPU_NVML_UP.emit({}, 1.0),
            GPU_DRIVER_INFO.emit({"driver_version": driver[0], "cuda_driver_version": driver[1]}, 1.0),
            GPU_COUNT.emit({}, float(len(caches))),
        ]
        if last_pass is not None:
            out.append(GPU_CACHE_AGE_SECONDS.emit({}, now - last_pass))
        slow_max_age = max(self.settings.max_age, 3 * self.settings.slow_poll_interval)
        events, kmsg = self._events, self._kmsg
        out.append(GPU_EVENT_THREAD_UP.emit({}, 1.0 if events is not None and events.up else 0.0))
        out.append(GPU_KERNEL_LOG_UP.emit({}, 1.0 if kmsg is not None and kmsg.running else 0.0))
        if kmsg is not None:
            out.append(GPU_KERNEL_LOG_LOST_TOTAL.emit({}, float(kmsg.lost)))
        if intake is not None:
            out.extend(intake.samples())
        for c, fast, slow, slow_at, fresh, stuck in snap:
            labels = c.dev.labels
            out.append(GPU_UP.emit(labels, 1.0 if fresh else 0.0))
            out.append(GPU_READ_ERRORS_TOTAL.emit(labels, float(c.dev.read_errors)))
            out.append(GPU_READ_STUCK.emit(labels, 1.0 if stuck else 0.0))
            if not fresh:
                continue
            out.extend(fast)
            if slow_at is not None and now - slow_at <= slow_max_age:
                out.extend(slow)
        return out

    # -- doctor ---------------------------------------------------------------------

    def doctor(self) -> Iterable[DoctorRow]:
        with self._lock:
            unavailable = self._unavailable
            caches = list(self._caches)
            driver = self._driver
        if unavailable is not None:
            # Missing NVML matters only where there are NVIDIA GPUs to read.
            on_pci = len(sysfs_gpus(self.paths))
            status = "fail" if on_pci else "off"
            detail = f"{unavailable.reason}; {on_pci} NVIDIA GPU(s) on PCI" if on_pci else \
                f"{unavailable.reason}; no NVIDIA GPU on PCI"
            yield DoctorRow("gpu", "NVML", status, detail, unavailable.fix if on_pci else "")
            return
        yield DoctorRow("gpu", "NVML", "ok", f"driver {driver[0]}, CUDA {driver[1]}, {len(caches)} GPU(s)")
        ev = self._events
        if ev is None:
            yield DoctorRow("gpu", "events", "warn", "no XID/ECC events on any GPU",
                            "XIDs come from the kernel log alone (see the kernel log row)")
        elif not ev.up:
            yield DoctorRow("gpu", "events", "warn", f"NVML event waits are failing ({ev.rebuilds} rebuilds)",
                            "check `nvidia-smi -q` for a lost GPU; the set is rebuilt without it")
        else:
            yield DoctorRow("gpu", "events", "ok", f"XID/ECC events registered on {len(ev.registered)} GPU(s)")
        kmsg = self._kmsg
        if kmsg is not None and kmsg.running:
            yield DoctorRow("gpu", "kernel log", "ok", f"following {kmsg.path} for XIDs and SXids")
        elif self.settings.kernel_log:
            why = (kmsg.error if kmsg is not None else None) or f"cannot read {self.paths.dev('kmsg')}"
            yield DoctorRow("gpu", "kernel log", "warn", f"{why}; XIDs 79, 119 and 120 go unseen",
                            "run infernode as root (its systemd unit does)")
        now = time.monotonic()
        for c in caches:
            item = f"GPU {c.dev.index} {c.dev.uuid}"
            stuck_for = c.stuck_for(now)
            if stuck_for > self.settings.stuck_after:
                yield DoctorRow("gpu", item, "fail", f"an NVML call has not returned for {stuck_for:.0f} s",
                                "check `dmesg` for XID 119/120 (GSP timeout); reset the GPU or reboot")
            elif c.lost:
                yield DoctorRow("gpu", item, "fail", f"lost (GPU_IS_LOST) at {c.dev.pci_bus_id}",
                                "reset the GPU (`nvidia-smi -r -i N`) or reboot the node; check `dmesg` for XID 79")
            elif c.dev.unsupported:
                yield DoctorRow("gpu", item, "ok", f"{c.dev.name}; not supported here: "
                                + ", ".join(sorted(c.dev.unsupported)))
            else:
                yield DoctorRow("gpu", item, "ok", c.dev.name)
