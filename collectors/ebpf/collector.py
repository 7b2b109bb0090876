"""The `ebpf` collector: loads the enabled programs in the background, keeps the
inference-thread scope map fresh, turns ring-buffer outliers into events and
exports the kernel histograms and counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.cgroups import cgroup_of_pid, process_of_thread
from agent.collector import Collector, CollectorContext
from agent.doctor_row import DoctorRow
from agent.events import Event
from agent.paths import Paths
from agent.samples import Sample
from collectors.cgroup import parse_uevent_devname
from collectors.ebpf import decode, exports, pressure
from collectors.ebpf.clock import MonotonicClock
from collectors.ebpf.probe import has_tracepoint, probe, tracefs_events
from collectors.ebpf.programs import PROGRAMS, Program, port_range_macro
from collectors.ebpf.scope import ScopeTable, read_scopes
from collectors.ebpf.settings import EbpfSettings
from collectors.ebpf.specs import EBPF_EVENTS_LOST_TOTAL, EBPF_PROGRAM_UP, EBPF_SCOPE_THREADS, OOM_KILLS_TOTAL, SPECS

if TYPE_CHECKING:
    from collectors.ebpf.loader import BpfModule

# How long a run-queue holder thread's process is remembered (a thread id is reused
# only after the pid space wraps, but a short memory costs nothing).
PROCESS_CACHE_S = 5.0


@dataclass
class ProgramState:
    state: str  # disabled | loading | up | down
    reason: str = ""
    fix: str = ""

    @property
    def up(self) -> bool:
        return self.state == "up"


def device_name(paths: Paths, major: int, minor: int) -> str:
    """The block device's name from its uevent, else "major:minor"."""
    try:
        text = paths.sys("dev", "block", f"{major}:{minor}", "uevent").read_text()
    except OSError:
        text = ""
    return parse_uevent_devname(text) or f"{major}:{minor}"


class EbpfCollector(Collector):
    name = "ebpf"
    # Off unless configured: loading compiles C with clang and attaches to the
    # scheduler; a node opts in with collectors.ebpf.enabled: true.
    default_enabled = False
    specs = SPECS
    settings_model = EbpfSettings

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.settings: EbpfSettings = ctx.settings  # type: ignore[assignment]
        switches = self.settings.programs
        self.state: dict[str, ProgramState] = {
            p.name: ProgramState("loading") if getattr(switches, p.name) else ProgramState(
                "disabled", "disabled in config", f"set collectors.ebpf.programs.{p.name}: true")
            for p in PROGRAMS
        }
        self.module: BpfModule | None = None
        self.scopes = ScopeTable()
        self.events_read: dict[str, int] = {p.name: 0 for p in PROGRAMS}
        self._stop = threading.Event()
        self._loader: threading.Thread | None = None
        self._scope_lock = threading.Lock()
        self._cache: tuple[float, list[Sample]] | None = None
        self._cache_lock = threading.Lock()
        self._devices: dict[tuple[int, int], str] = {}
        self._processes: dict[int, tuple[float, tuple[int, str] | None]] = {}  # tid -> (read at, process)
        self.loaded = threading.Event()  # set when loading finished, whatever its outcome
        self.clock: MonotonicClock | None = None
        # source -> (read at, realtime ns; cumulative kernel totals then)
        # The last read of each source: (time ns, the kernel's sums then).
        self._pressure_rq: tuple[int, pressure.Totals] | None = None
        self._pressure_io: tuple[int, pressure.IoTotals] | None = None
        self._pressure_rc: tuple[int, pressure.ReclaimTotals] | None = None
        self._pressure_thread: threading.Thread | None = None
        self._pressure_lock = threading.Lock()  # the drain thread and span ingest both drain

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        wanted = [p for p in PROGRAMS if self.state[p.name].state == "loading"]
        for name, verdict in probe(self.paths, wanted).items():
            if not verdict.ok:
                self._down(name, verdict.reason, verdict.fix)
        if not any(s.state == "loading" for s in self.state.values()):
            self.loaded.set()
            return
        self.ctx.services.ebpf_refresh_scope = self.refresh_scope
        # clang takes seconds: the daemon must not wait for it.
        self._loader = threading.Thread(target=self._load_and_run, name="ebpf-loader", daemon=True)
        self._loader.start()

    def stop(self) -> None:
        self._stop.set()
        if self._loader is not None:
            self._loader.join(timeout=5)
        if self._pressure_thread is not None:
            self._pressure_thread.join(timeout=5)
        if self.module is not None:
            self.module.close()
            self.module = None

    def _down(self, name: str, reason: str, fix: str) -> None:
        self.state[name] = ProgramState("down", reason, fix)
        self.ctx.log.warning("ebpf program %s is off: %s; fix: %s", name, reason, fix)

    def _defines(self) -> dict[str, int | str]:
        s = self.settings
        return {
            "TCP_PORT_RANGES": len(s.port_ranges()),
            # The socket's congestion state on each retransmit, where the kernel traces it (5.19+).
            "TCP_CA_STATE": int((events := tracefs_events(self.paths)) is not None
                                and has_tracepoint(events, "tcp:tcp_cong_state_set")),
            "TCP_PORT_RANGE(p)": port_range_macro([(lo, hi) for _, lo, hi in s.port_ranges()]),
            "RINGBUF_PAGES": s.ringbuf_pages,
            "SCOPE_MAX_TIDS": s.max_tracked_threads,
            "SCHED_MAX_TIDS": s.max_tracked_threads,
            "BIO_MAX_INFLIGHT": 16384,
            "BIO_MAX_SERIES": 16384,  # (device, op, slot) keys
            "RUNQ_THRESHOLD_NS": int(s.runqueue_threshold * 1e9),
            "RUNQ_PRESSURE": int(s.runqueue_pressure_interval > 0),
            "RUNQ_PRESSURE_SCOPES": 4096,
            "BIO_THRESHOLD_NS": int(s.io_threshold * 1e9),
            # A submission this old is a bio merged into another request long ago
            # whose sector is being reused, not this request's.
            "BIO_MAX_QUEUE_NS": 30 * 10**9,
            "IO_PRESSURE": int(s.io_pressure_interval > 0),
            "IO_PRESSURE_SERIES": 4096,  # (scope, device) pairs
            "RECLAIM_THRESHOLD_NS": int(s.reclaim_threshold * 1e9),
            "RECLAIM_PRESSURE": int(s.reclaim_pressure_interval > 0),
            "RECLAIM_PRESSURE_SERIES": 4096,  # (scope, kind) pairs
            "OFFCPU_ALL_THREADS": int(s.offcpu_all_threads),
        }

    def _compile(self, programs: list[Program]) -> BpfModule:
        from collectors.ebpf.loader import BpfModule

        module = BpfModule(programs, self._defines())
        module.load()
        return module

    def _load_and_run(self) -> None:
        from collectors.ebpf.loader import LoadError

        try:
            wanted = [p for p in PROGRAMS if self.state[p.name].state == "loading"]
            self.clock = MonotonicClock(self.settings.clock_remeasure)
            try:
                module = self._compile(wanted)
            except LoadError as e:
                # Find the program at fault, then load the others together.
                good = []
                for p in wanted:
                    try:
                        self._compile([p]).close()
                        good.append(p)
                    except LoadError as pe:
                        self._down(p.name, f"failed to load: {pe}", "see the agent log; infernode ebpf status")
                if not good or len(good) == len(wanted):
                    for p in good:
                        self._down(p.name, f"failed to load: {e}", "see the agent log; infernode ebpf status")
                    return
                module = self._compile(good)
                wanted = good
            if self._stop.is_set():
                module.close()
                return
            self.module = module
            self.refresh_scope()
            module.start_reader(self._on_record)
            for p in wanted:
                self.state[p.name] = ProgramState("up")
            if self._pressure_sources():
                self.drain_pressure()  # the baseline: waits before now belong to no window
                self._pressure_thread = threading.Thread(target=self._pressure_loop, name="ebpf-pressure",
                                                         daemon=True)
                self._pressure_thread.start()
                self.ctx.services.ebpf_drain_pressure = self.drain_pressure
            self.ctx.log.info("ebpf programs loaded: %s", ", ".join(p.name for p in wanted))
        except Exception as e:  # a loader failure must leave the daemon running
            self.ctx.log.exception("ebpf loader failed")
            for name, st in self.state.items():
                if st.state == "loading":
                    self._down(name, f"loader failed: {e}", "see the agent log")
            return
        finally:
            self.loaded.set()
        self._refresh_loop()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.settings.scope_refresh):
            try:
                self.refresh_scope()
                if self.clock is not None:
                    self.clock.maybe_remeasure()
            except Exception:
                self.ctx.log.exception("ebpf scope refresh failed")

    # --- pressure windows (run-queue waits, block I/O waits, reclaim stalls) -------

    def _pressure_sources(self) -> dict[str, float]:
        """Sources whose program is up and whose sums are on: name -> interval (s)."""
        s = self.settings
        out = {}
        if self.state["runqueue"].up and s.runqueue_pressure_interval > 0:
            out["runqueue"] = s.runqueue_pressure_interval
        if self.state["blockio"].up and s.io_pressure_interval > 0:
            out["blockio"] = s.io_pressure_interval
        if self.state["reclaim"].up and s.reclaim_pressure_interval > 0:
            out["reclaim"] = s.reclaim_pressure_interval
        return out

    def _pressure_loop(self) -> None:
        sources = self._pressure_sources()
        while not self._stop.wait(min(sources.values())):
            try:
                self.drain_pressure(due_only=True)
            except Exception:
                self.ctx.log.exception("ebpf pressure drain failed")

    def drain_pressure(self, due_only: bool = False) -> int:
        """Read the kernel's wait sums and add one pressure event per scope and CPU
        (run-queue), device (block I/O) or kind (reclaim) for the waits since the last read; returns
        the number added. The span ingest calls this so that a request that just
        ended sees its last waits; the drain thread calls it with `due_only`."""
        module = self.module
        if module is None:
            return 0
        sources = self._pressure_sources()
        with self._pressure_lock:
            now = time.time_ns()
            if due_only:
                # A drain from the span ingest may have just happened: keep windows
                # about the configured width instead of adding slivers.
                last = {"runqueue": self._pressure_rq, "blockio": self._pressure_io, "reclaim": self._pressure_rc}
                sources = {k: iv for k, iv in sources.items()
                           if (prev := last[k]) is None or now - prev[0] >= iv * 0.9e9}
            with module._lock:
                if module.bpf is None:
                    return 0
                rq = self._read_runqueue(module) if "runqueue" in sources else None
                io = self._read_io(module) if "blockio" in sources else None
                rc = self._read_reclaim(module) if "reclaim" in sources else None
            now = time.time_ns()
            events: list[Event] = []
            if rq is not None:
                prev_rq, self._pressure_rq = self._pressure_rq, (now, rq)
                if prev_rq is not None:
                    events += pressure.pressure_events(prev_rq[1], rq, prev_rq[0], now, self.scopes.names)
            if io is not None:
                prev_io, self._pressure_io = self._pressure_io, (now, io)
                if prev_io is not None:
                    events += pressure.io_pressure_events(prev_io[1], io, prev_io[0], now, self.scopes.names,
                                                          self._device)
            if rc is not None:
                prev_rc, self._pressure_rc = self._pressure_rc, (now, rc)
                if prev_rc is not None:
                    events += pressure.reclaim_pressure_events(prev_rc[1], rc, prev_rc[0], now, self.scopes.names)
            for ev in events:
                self.ctx.events.add(ev)
            return len(events)

    @staticmethod
    def _read_runqueue(module: BpfModule) -> pressure.Totals:
        return pressure.totals_from_percpu([(k.value, [(v.ns, v.waits) for v in per_cpu])
                                            for k, per_cpu in module.table("runq_pressure").items()])

    @staticmethod
    def _read_io(module: BpfModule, in_flight: bool = True) -> pressure.IoTotals:
        """The block I/O sums; with `in_flight`, plus the waits so far of requests
        not yet completed (what a window needs; a counter wants completed ones only)."""
        completed = [(k.scope_id, k.dev, [(v.ns, v.requests, v.reads, v.bytes) for v in per_cpu])
                     for k, per_cpu in module.table("io_pressure").items()]
        if not in_flight:
            return pressure.io_totals_from_percpu(completed)
        now_mono = time.monotonic_ns()  # bpf_ktime_get_ns's clock
        inflight = [(v.scope_id, v.dev, v.start) for v in module.table("io_inflight").values()]
        return pressure.io_totals_from_percpu(completed, inflight, now_mono)

    def _read_reclaim(self, module: BpfModule) -> pressure.ReclaimTotals:
        """The reclaim sums, plus the stalls of inference threads still in progress
        (reclaim_start holds every thread's; the scope table says whose are ours)."""
        completed = [(k.scope_id, k.kind, v.ns, v.stalls) for k, v in module.table("reclaim_pressure").items()]
        now_mono = time.monotonic_ns()  # bpf_ktime_get_ns's clock
        tids = self.scopes.tids
        inflight = [(sid, v.kind & 1, v.ts) for k, v in module.table("reclaim_start").items()
                    if (sid := tids.get(k.value)) is not None]
        return pressure.reclaim_totals(completed, inflight, now_mono)

    # --- scope -----------------------------------------------------------------

    def refresh_scope(self) -> int:
        """Re-read the inference cgroups into the kernel's tid map; the worker
        supervisor calls this (services.ebpf_refresh_scope) after a restart.
        Returns the number of inference threads."""
        with self._scope_lock:
            old = self.scopes
            table = read_scopes(self.paths, self.settings.inference_cgroups, old)
            # Names first: the kernel may emit an event with a new scope id as soon
            # as the map below holds it.
            self.scopes = table
            module = self.module
            if module is not None and module.bpf is not None:
                import ctypes

                tmap = module.table("scope_tids")
                for tid in set(old.tids) - set(table.tids):
                    try:
                        del tmap[ctypes.c_uint32(tid)]
                    except KeyError:
                        pass
                # Every entry, every time: the kernel edits this map itself (forked
                # threads join, exiting ones leave), so the last table is no mirror of
                # it, and a reused tid skipped here would silently drop out of scope.
                for tid, sid in table.tids.items():
                    tmap[ctypes.c_uint32(tid)] = ctypes.c_uint32(sid)
            return len(table.tids)

    # --- events ----------------------------------------------------------------

    def _device(self, major: int, minor: int) -> str:
        key = (major, minor)
        if key not in self._devices:
            self._devices[key] = device_name(self.paths, major, minor)
        return self._devices[key]

    def _process_of(self, tid: int) -> tuple[int, str] | None:
        """A run-queue holder's process, cached briefly: a hog holds the CPU for many
        waits in a row, and two procfs reads per outlier would cost more than it."""
        now = time.monotonic()
        hit = self._processes.get(tid)
        if hit is not None and now - hit[0] < PROCESS_CACHE_S:
            return hit[1]
        if len(self._processes) >= 4096:
            self._processes.clear()
        found = process_of_thread(self.paths, tid)
        self._processes[tid] = (now, found)
        return found

    def _on_record(self, data: bytes) -> None:
        raw = decode.parse_record(data)
        self.events_read[raw.program] = self.events_read.get(raw.program, 0) + 1
        assert self.clock is not None
        ev = decode.to_event(raw, self.clock.to_realtime, self.scopes.names, self._device,
                             lambda pid: cgroup_of_pid(self.paths, pid), self._process_of)
        self.ctx.events.add(ev)

    # --- collection ------------------------------------------------------------

    def collect(self) -> Iterable[Sample]:
        out = [EBPF_PROGRAM_UP.emit({"program": n}, 1.0 if s.up else 0.0)
               for n, s in self.state.items()]
        module = self.module
        if module is None or module.bpf is None:
            return out
        now = time.monotonic()
        with self._cache_lock:
            if self._cache is None or now - self._cache[0] >= self.settings.cache_max_age:
                self._cache = (now, list(self._read_maps(module)))
            return out + self._cache[1]

    def _read_maps(self, module: BpfModule) -> Iterable[Sample]:
        from collectors.ebpf.loader import array_values, hash_items, percpu_array_values, percpu_sums

        up = {n for n, s in self.state.items() if s.up}
        with module._lock:
            if module.bpf is None:
                return
            lost = array_values(module.table("lost"))
            for p in PROGRAMS:
                if p.name in up:
                    yield EBPF_EVENTS_LOST_TOTAL.emit({"program": p.name}, float(lost[p.prog_id]))
            yield EBPF_SCOPE_THREADS.emit({}, float(len(self.scopes.tids)))
            if "runqueue" in up:
                yield from exports.runqueue_samples(percpu_sums(module.table("runq_hist")),
                                                    percpu_sums(module.table("runq_sum")))
            if "offcpu" in up:
                yield from exports.offcpu_samples(percpu_sums(module.table("offcpu_hist")),
                                                  percpu_sums(module.table("offcpu_sum")),
                                                  self.settings.offcpu_all_threads)
            if "blockio" in up:
                entries = [(k.dev, k.op, k.slot, v) for k, v in hash_items(module.table("bio_hist"))]
                yield from exports.blockio_samples(entries, self._device)
                if self.settings.io_pressure_interval > 0:
                    yield from exports.inference_io_samples(self._read_io(module, in_flight=False), self._device)
            if "tcp_retransmit" in up:
                yield from exports.tcp_samples(array_values(module.table("tcp_retrans")),
                                               [name for name, _, _ in self.settings.port_ranges()])
            if "oom" in up:
                yield OOM_KILLS_TOTAL.emit({}, float(array_values(module.table("oom_kills"))[0]))
            if "reclaim" in up:
                yield from exports.reclaim_samples(array_values(module.table("reclaim_count")),
                                                   array_values(module.table("reclaim_ns")))
            if "irq" in up:
                yield from exports.irq_samples(percpu_array_values(module.table("irq_ns")))

    # --- doctor ----------------------------------------------------------------

    def doctor(self) -> Iterable[DoctorRow]:
        # A one-shot `infernode doctor` starts the load itself: report its outcome,
        # not "still compiling".
        if self._loader is not None:
            self.loaded.wait(timeout=60)
        for name, st in self.state.items():
            status = {"up": "ok", "loading": "ok", "disabled": "off"}.get(st.state, "warn")
            detail = {"up": "loaded and attached", "loading": "checks passed; compiling in the background"}.get(
                st.state, st.reason)
            yield DoctorRow("ebpf", name, status, detail, st.fix)
