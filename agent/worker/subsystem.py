"""The worker supervisor: renders each worker's drop-in, starts its unit, probes
its health, restarts it with backoff, stops it for good on a fatal GPU fault,
drains it on request, and re-exposes its vLLM metrics.

One asyncio task per worker. Workers outlive the agent: stopping or restarting
the agent leaves them running, and a starting agent adopts them (restarting one
only when its rendered drop-in changed).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent.cpulist import parse_cpulist
from agent.doctor_row import DoctorRow
from agent.events import NODE, AttrValue, Event, now_ns
from agent.hostfs import write_atomic
from agent.paths import Paths
from agent.runtime import off_loop
from agent.samples import Sample
from agent.subsystem import Subsystem, SubsystemContext, off_response
from agent.topology import gpu_addresses
from agent.untyped import JsonDocument
from agent.usage import WorkerHolding
from agent.worker import engine_windows, gpufaults
from agent.worker.backoff import BackoffPolicy
from agent.worker.cordon import CordonError, check_reason, clear_cordon, read_cordon, write_cordon
from agent.worker.dropin import DROPIN_NAME, dropin_dir_name, gpus_label, otlp_endpoint, render_dropin, unit_name
from agent.worker.engine_windows import EngineWindows
from agent.worker.placement import Placement, SysfsPlacement
from agent.worker.policy import Action, WorkerPhase, WorkerPolicy
from agent.worker.scrape import MalformedExposition, parse_vllm_metrics
from agent.worker.settings import WorkerConfig, WorkerSettings
from agent.worker.specs import (
    NODE_SCHEDULABLE,
    WORKER_INFO,
    WORKER_READY,
    WORKER_RESTARTS_TOTAL,
    WORKER_SCRAPE_MALFORMED_TOTAL,
    WORKER_SCRAPE_UP,
    WORKER_SPECS,
    WORKER_STARTUP_PHASE_SECONDS,
    WORKER_UP,
)
from agent.worker.systemctl import Systemctl, SystemctlError
from agent.worker.vllm_version import MIN_VLLM_TEXT, too_old

log = logging.getLogger("infernode.worker")

ACTIVE_STATES = ("active", "activating", "reloading", "deactivating")
# argparse's exit status for a command line it rejects (vLLM's parser is argparse).
USAGE_EXIT_STATUS = "2"
CLD_EXITED = "1"  # ExecMainCode: the process exited (rather than was killed)


def phase_label(span_name: str) -> str:
    """A start-up span's name as a label value: "Download weights - HF" -> download_weights_hf."""
    return re.sub(r"[^a-z0-9]+", "_", span_name.lower()).strip("_")[:64] or "unnamed"


@dataclass
class WorkerRuntime:
    settings: WorkerSettings
    policy: WorkerPolicy
    unit: str
    up: bool = False
    healthy: bool | None = None
    active_state: str = "unknown"
    main_pid: int = 0
    last_problem: str = ""
    restarts: dict[str, int] = field(default_factory=dict)
    scrape_up: bool = False
    scrape_malformed: int = 0
    vllm_samples: list[Sample] = field(default_factory=list)
    model: str | None = None
    vllm_version: str = ""
    # Seconds each start-up phase took (vLLM's start-up spans) in the latest start.
    startup_phases: dict[str, float] = field(default_factory=dict)
    # The unit was active at the latest tick: its /metrics may be scraped.
    serving: bool = False
    task: asyncio.Task[None] | None = None
    # Scrapes on their own clock (workers[].metrics_interval), else with each tick.
    scrape_task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    windows: EngineWindows | None = None
    # systemd's monotonic times the unit last left and entered "inactive" (seconds).
    held_since: float | None = None
    held_until: float | None = None

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in (self.task, self.scrape_task) if t is not None]

    def cancel(self) -> None:
        for t in self.tasks():
            t.cancel()

    def readiness(self, cordon: str | None) -> tuple[bool, str]:
        """`ready`, with the node's cordon (its reason, or None) taken into account: a
        cordoned node's serving workers are out of rotation, still running."""
        ok, why = self.ready()
        if ok and cordon is not None:
            return False, f"node cordoned: {cordon}"
        return ok, why

    def ready(self) -> tuple[bool, str]:
        """Whether a load balancer should send this worker requests, and why not.

        vLLM's own /health stays 200 while it drains and its HTTP server accepts
        requests it then answers with finish_reason "abort", so rotation cannot be
        left to /health: only a serving, healthy worker is ready."""
        phase = self.policy.phase
        if phase is WorkerPhase.RUNNING and self.up:
            return True, "serving"
        if phase is WorkerPhase.STARTING:
            last = next(reversed(self.startup_phases), None)
            return False, "starting: loading the model" + (f" (last phase done: {last})" if last else "")
        if phase is WorkerPhase.DRAINING:
            return False, "draining: taken out of rotation"
        if phase is WorkerPhase.DRAINED:
            return False, "stopped: drained"
        if phase is WorkerPhase.BACKOFF:
            return False, f"down, restart pending: {self.last_problem or 'exited'}"
        if phase in (WorkerPhase.GPU_FAULT, WorkerPhase.REFUSED):
            return False, f"stopped: {self.last_problem}"
        return False, f"unhealthy: {self.last_problem or 'health probes failing'}"

    def status(self, cordon: str | None = None) -> dict[str, Any]:
        s = self.settings
        ready, why = self.readiness(cordon)
        return {
            "worker": s.name, "unit": self.unit, "gpus": gpus_label(s.gpus), "port": s.port,
            "active_state": self.active_state, "phase": self.policy.phase.value, "healthy": self.healthy,
            "up": self.up, "ready": ready, "ready_reason": why, "main_pid": self.main_pid,
            "restarts": sum(self.restarts.values()), "scrape_up": self.scrape_up, "problem": self.last_problem,
            "model": self.model or "", "vllm_version": self.vllm_version,
            "startup_phases": dict(self.startup_phases),
        }


class WorkerSupervisor(Subsystem[WorkerConfig]):
    name = "worker"
    specs = WORKER_SPECS

    @classmethod
    def enabled(cls, config: WorkerConfig) -> bool:
        return bool(config.workers)

    def __init__(self, ctx: SubsystemContext[WorkerConfig]) -> None:
        super().__init__(ctx)
        self.systemctl = Systemctl()
        self.workers: dict[str, WorkerRuntime] = {}
        self.node_fault: str | None = None
        # The operator's cordon (agent/worker/cordon.py): its reason, or None.
        self.cordon: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._fault_since_ns = now_ns()

    # ---- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        self.cordon = await off_loop(read_cordon, self.ctx.paths)
        if self.cordon is not None:
            log.warning("the node is cordoned (%s): its workers are out of rotation until `infernode uncordon`",
                        self.cordon)
        self._session = aiohttp.ClientSession()
        # For the span pipeline: vLLM's spans name no model, and its start-up spans
        # are this worker's loading progress.
        self.ctx.services.worker_model_of = self.model_of
        self.ctx.services.worker_startup_phase = self.startup_phase
        # For the cost ledger: which GPUs each worker holds, and whether it serves.
        self.ctx.services.worker_holdings = self.holdings
        await self._apply(self.ctx.config)

    def model_of(self, name: str) -> str | None:
        w = self.workers.get(name)
        return w.model if w is not None else None

    def holdings(self) -> list[WorkerHolding]:
        """Each worker's GPUs, held while its unit is active (starting, serving and
        draining alike), and its requests in flight at vLLM's latest scrape."""
        out = []
        for w in self.workers.values():
            in_flight: float | None = None
            if w.scrape_up:
                in_flight = sum(float(x.value) for x in w.vllm_samples
                                if x.name in (engine_windows.RUNNING, engine_windows.WAITING)
                                and isinstance(x.value, (int, float)))
            out.append(WorkerHolding(w.settings.name, w.model or "", tuple(w.settings.gpus),
                                     w.active_state in ACTIVE_STATES, in_flight, w.held_since, w.held_until))
        return out

    def startup_phase(self, name: str, span_name: str, start_ns: int, end_ns: int) -> None:
        """A start-up span of worker `name` arrived (called from the span pipeline's
        thread): record how long the phase took; a worker still starting has made
        progress, so its start-up grace counts again from now."""
        w = self.workers.get(name)
        if w is None:
            return
        phase = phase_label(span_name)
        seconds = (end_ns - start_ns) / 1e9
        w.startup_phases[phase] = seconds
        w.policy.progress(time.monotonic())
        self.ctx.events.add(Event(start_ns, end_ns, "worker_startup_phase", f"worker:{name}", seconds,
                                     {"unit": w.unit, "phase": phase}))

    async def stop(self) -> None:
        self.ctx.services.withdraw(self)
        # Workers keep serving while the agent is down; only our loops end.
        for w in self.workers.values():
            w.cancel()
        await asyncio.gather(*(t for w in self.workers.values() for t in w.tasks()), return_exceptions=True)
        if self._session:
            await self._session.close()

    async def turn_off(self, config: WorkerConfig) -> None:
        # A config without workers removes each of them, as removing one of several
        # does (its unit stopped, its drop-in deleted); only then do our loops end.
        await self._apply(config)
        await self.stop()

    async def reload(self, config: WorkerConfig) -> None:
        await self._apply(config)

    async def _apply(self, config: WorkerConfig) -> None:
        wanted = {w.name: w for w in config.workers}
        await asyncio.gather(*(self._remove(w) for name, w in list(self.workers.items()) if name not in wanted))
        bring_up: list[tuple[WorkerRuntime, bool]] = []
        written = False
        for name, settings in wanted.items():
            text = render_dropin(settings, self._placement(settings), otlp_endpoint(self._otlp_listen(config)))
            path = self._dropin_path(name)
            old = path.read_text() if path.exists() else None
            if old != text:
                write_atomic(path, text)
                written = True
            # A running worker whose drop-in changed runs with stale pinning or args:
            # restart it (once the new drop-in is loaded).
            restart = old is not None and old != text
            w = self.workers.get(name)
            if w is None or w.settings != settings:
                if w:
                    w.cancel()
                w = WorkerRuntime(settings, self._policy(settings), unit_name(name), windows=EngineWindows(name))
                self.workers[name] = w
                bring_up.append((w, restart))
            elif restart:
                bring_up.append((w, restart))
        if written:
            await self.systemctl.daemon_reload()
        for w, restart in bring_up:
            await self._bring_up(w, restart=restart)
            if w.task is None or w.task.done():
                w.task = asyncio.create_task(self._loop(w), name=f"worker-{w.settings.name}")
            if w.settings.metrics_interval is not None and (w.scrape_task is None or w.scrape_task.done()):
                w.scrape_task = asyncio.create_task(self._scrape_loop(w), name=f"worker-{w.settings.name}-scrape")

    async def _remove(self, w: WorkerRuntime) -> None:
        """A worker gone from the config is drained like `infernode drain` does it:
        out of rotation first, then SIGTERM (systemctl stop) once the balancers had
        deregister_delay to notice."""
        w.cancel()
        if w.up:
            # Still listed meanwhile, so /workers/NAME/ready answers 503, not 404.
            w.policy.phase = WorkerPhase.DRAINING
            await asyncio.sleep(w.settings.deregister_delay)
        self.workers.pop(w.settings.name, None)
        await self._stop_unit(w, "removed from config")
        self._dropin_path(w.settings.name).unlink(missing_ok=True)

    def _dropin_path(self, name: str) -> Path:
        return self.ctx.paths.run("systemd", "system", dropin_dir_name(name), DROPIN_NAME)

    def _otlp_listen(self, config: WorkerConfig) -> str | None:
        return config.otlp.grpc_listen if config.otlp.enabled else None

    def _policy(self, s: WorkerSettings) -> WorkerPolicy:
        b = s.backoff
        return WorkerPolicy(BackoffPolicy(b.initial, b.factor, b.max, b.reset_after),
                            s.health.failures_before_restart, s.health.startup_grace)

    def _placement(self, s: WorkerSettings) -> Placement:
        inference = self.ctx.services.tuning_inference_cpus
        found = (SysfsPlacement(self.ctx.paths, inference() if inference else None).placement(s.gpus)
                 if s.gpus else Placement())
        cpus = tuple(sorted(parse_cpulist(s.cpus))) if s.cpus else found.cpus
        nodes = tuple(s.numa_nodes) if s.numa_nodes is not None else found.numa_nodes
        return Placement(tuple(cpus), nodes)

    # ---- unit control ----------------------------------------------------

    async def _bring_up(self, w: WorkerRuntime, restart: bool = False) -> None:
        try:
            state = await self.systemctl.show(w.unit, "ActiveState")
            if state.get("ActiveState") == "failed":
                await self.systemctl.reset_failed(w.unit)
            if restart:
                await self.systemctl.restart(w.unit)
                self._count_restart(w, "config")
            elif state.get("ActiveState") not in ACTIVE_STATES:
                await self.systemctl.start(w.unit)
                self._event("worker_start", w)
                w.startup_phases = {}
            w.policy.started(time.monotonic())
            w.last_problem = ""
        except SystemctlError as e:
            w.last_problem = str(e)
            log.error("worker %s: %s", w.settings.name, e)

    async def _stop_unit(self, w: WorkerRuntime, reason: str) -> None:
        try:
            await self.systemctl.stop(w.unit)
        except SystemctlError as e:
            log.error("worker %s: %s", w.settings.name, e)
        self._event("worker_stop", w, reason=reason)

    def _count_restart(self, w: WorkerRuntime, reason: str) -> None:
        w.restarts[reason] = w.restarts.get(reason, 0) + 1
        self._event("worker_restart", w, reason=reason)

    def _event(self, kind: str, w: WorkerRuntime, **attrs: AttrValue) -> None:
        t = now_ns()
        self.ctx.events.add(Event(t, t, kind, f"worker:{w.settings.name}", 1.0,
                                     {"unit": w.unit, **{k: str(v) for k, v in attrs.items()}}))

    # ---- the per-worker loop ---------------------------------------------

    async def _loop(self, w: WorkerRuntime) -> None:
        while True:
            try:
                await self._tick(w)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one bad tick must not end supervision
                w.last_problem = f"{type(e).__name__}: {e}"
                log.exception("worker %s: supervision tick failed", w.settings.name)
            try:
                await asyncio.wait_for(w.wake.wait(), w.settings.health.interval)
            except TimeoutError:
                pass
            w.wake.clear()

    async def _tick(self, w: WorkerRuntime) -> None:
        s = w.settings
        try:
            show = await self.systemctl.show(w.unit, "ActiveState", "MainPID", "ExecMainCode", "ExecMainStatus",
                                         "InactiveExitTimestampMonotonic", "InactiveEnterTimestampMonotonic")
        except SystemctlError as e:
            w.last_problem = str(e)
            w.up = w.serving = False
            return
        w.active_state = show.get("ActiveState", "unknown")
        w.main_pid = int(show.get("MainPID", "0") or 0)
        w.held_since = _monotonic_s(show.get("InactiveExitTimestampMonotonic"))
        w.held_until = _monotonic_s(show.get("InactiveEnterTimestampMonotonic"))
        active = w.active_state in ACTIVE_STATES and w.active_state != "deactivating"
        if (not active and w.policy.phase is WorkerPhase.STARTING and show.get("ExecMainCode") == CLD_EXITED
                and show.get("ExecMainStatus") == USAGE_EXIT_STATUS):
            # Restarting a command line vLLM rejects only rejects it again.
            self._refuse(w, f"vLLM rejected its command line (exit status 2 at argument parsing); "
                            f"see journalctl -u {w.unit}, fix workers[{s.name}] and reload")
            return
        healthy: bool | None = None
        failure = "unhealthy"
        if active and not w.policy.phase.stopped_for_good:
            healthy, problem, failure = await self._probe(w)
            if not healthy:
                w.last_problem = problem
        w.healthy = healthy
        fault = self._gpu_fault(s)
        decision = w.policy.observe(time.monotonic(), active, healthy, fault, failure)
        if decision.action is Action.STOP:
            log.error("worker %s: stopping for good: %s", s.name, decision.reason)
            w.last_problem = f"GPU fault: {decision.reason}"
            await self._stop_unit(w, decision.reason)
        elif decision.action is Action.STOP_FOR_RESTART:
            log.warning("worker %s: %s; restarting in %.0fs", s.name, decision.reason, decision.delay)
            # No drain: a worker whose server or engine is wedged would only hold its
            # requests until --shutdown-timeout and then drop them anyway.
            try:
                await self.systemctl.kill(w.unit, "SIGKILL", who="all")
            except SystemctlError as e:
                log.warning("worker %s: %s", s.name, e)
            await self._stop_unit(w, decision.reason)
        elif decision.action is Action.START:
            try:
                await self.systemctl.reset_failed(w.unit)
            except SystemctlError:
                pass  # not failed: nothing to reset
            await self.systemctl.start(w.unit)
            w.startup_phases = {}
            self._count_restart(w, decision.reason)
        elif decision.reason == "exited":
            log.warning("worker %s: unit is %s; restarting in %.0fs", s.name, w.active_state, decision.delay)
            w.last_problem = f"unit {w.active_state}"
        was_up, w.up = w.up, bool(active and healthy)
        if w.up and not was_up:
            await self._identify(w)
            if w.policy.phase is WorkerPhase.REFUSED:
                return
            # A (re)started vLLM has spawned its threads by the time it answers
            # /health: have the eBPF scope map pick them up now rather than at
            # its next periodic rescan.
            refresh = self.ctx.services.ebpf_refresh_scope
            if refresh is not None:
                await off_loop(refresh)
        w.serving = active
        if s.metrics_interval is None:
            await self._scrape_if_serving(w)

    async def _scrape_loop(self, w: WorkerRuntime) -> None:
        interval = w.settings.metrics_interval or w.settings.health.interval
        while True:
            try:
                await self._scrape_if_serving(w)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad scrape must not end the scrapes
                log.exception("worker %s: scrape failed", w.settings.name)
            await asyncio.sleep(interval)

    async def _scrape_if_serving(self, w: WorkerRuntime) -> None:
        if w.settings.scrape_metrics and w.serving:
            await self._scrape(w)
        else:
            self._scrape_lost(w)

    def _scrape_lost(self, w: WorkerRuntime) -> None:
        w.scrape_up = False
        w.vllm_samples = []  # never serve stale values as if they were current
        if w.windows is not None:
            w.windows.reset()

    async def _identify(self, w: WorkerRuntime) -> None:
        """What a worker that just came up serves: its model id (vLLM's spans name
        none) and its vLLM version. A version older than the drop-in's flags need
        is refused, never restart-looped."""
        s = w.settings
        try:
            await self._read_model(w)
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, IndexError, TypeError) as e:
            log.warning("worker %s: cannot read its model from /v1/models: %s", s.name, e)
        try:
            w.vllm_version = str((await self._get_json(w, "/version"))["version"])[:64]
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError) as e:
            log.warning("worker %s: cannot read its vLLM version from /version: %s", s.name, e)
            return
        if too_old(w.vllm_version):
            self._refuse(w, f"vLLM {w.vllm_version} is older than {MIN_VLLM_TEXT}, the oldest release whose "
                            "flags the agent renders (--shutdown-timeout); upgrade vLLM on this node")
            await self._stop_unit(w, "vllm_too_old")

    async def _get_json(self, w: WorkerRuntime, path: str) -> JsonDocument:
        """GET one of the worker's JSON routes within its health probe timeout."""
        assert self._session is not None
        s = w.settings
        async with self._session.get(f"{s.base_url}{path}",
                                     timeout=aiohttp.ClientTimeout(total=s.health.timeout)) as r:
            return await r.json()

    async def _read_model(self, w: WorkerRuntime) -> None:
        """The served model id from /v1/models (data[0].id)."""
        w.model = str((await self._get_json(w, "/v1/models"))["data"][0]["id"])[:256]

    def _refuse(self, w: WorkerRuntime, why: str) -> None:
        log.error("worker %s: not restarting: %s", w.settings.name, why)
        w.policy.phase = WorkerPhase.REFUSED
        w.last_problem = why
        w.up = False
        self._event("worker_refused", w, reason=why)

    async def _probe(self, w: WorkerRuntime) -> tuple[bool, str, str]:
        """(healthy, problem, restart reason if this failure leads to one)."""
        assert self._session is not None
        s, h = w.settings, w.settings.health
        base = s.base_url
        try:
            async with self._session.get(base + h.path, timeout=aiohttp.ClientTimeout(total=h.timeout)) as r:
                if r.status != 200:
                    return False, f"{h.path} answered {r.status}", "unhealthy"
        except TimeoutError:
            return False, f"{h.path} did not answer within {h.timeout:g}s", "unhealthy"
        except aiohttp.ClientError as e:
            return False, f"{h.path}: {e}", "unhealthy"
        if not h.generation_probe:
            return True, "", ""
        # /health does not notice a hung engine (vllm#39863); one generated token does.
        body: dict[str, Any] = {"prompt": "ping", "max_tokens": 1, "temperature": 0}
        try:
            if w.model is None:
                await self._read_model(w)
            body["model"] = w.model
            async with self._session.post(base + h.generation_probe, json=body,
                                          timeout=aiohttp.ClientTimeout(total=h.generation_timeout)) as r:
                if r.status != 200:
                    return False, f"generation probe answered {r.status}", "generation_probe"
                await r.read()
        except TimeoutError:
            return False, f"generation probe did not finish within {h.generation_timeout:g}s", "generation_probe"
        except (aiohttp.ClientError, ValueError, KeyError, IndexError) as e:
            return False, f"generation probe: {type(e).__name__}: {e}", "generation_probe"
        return True, "", ""

    async def _scrape(self, w: WorkerRuntime) -> None:
        assert self._session is not None
        s = w.settings
        url = f"{s.base_url}/metrics"
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=s.health.timeout)) as r:
                if r.status != 200:
                    raise aiohttp.ClientError(f"answered {r.status}")
                text = await r.text()
        except (TimeoutError, aiohttp.ClientError) as e:
            self._scrape_lost(w)
            log.debug("worker %s: scrape failed: %s", s.name, e)
            return
        try:
            parsed = await off_loop(parse_vllm_metrics, text, s.name, gpus_label(s.gpus))
        except MalformedExposition as e:
            w.scrape_malformed += 1
            self._scrape_lost(w)
            log.warning("worker %s: dropping malformed /metrics: %s", s.name, e)
            return
        w.scrape_up = True
        w.vllm_samples = parsed.samples
        if w.windows is not None:
            for ev in w.windows.observe(parsed.samples, now_ns()):
                self.ctx.events.add(ev)

    def _gpu_fault(self, s: WorkerSettings) -> str | None:
        events = self.ctx.events.query(self._fault_since_ns, now_ns() + 1, kinds=gpufaults.KINDS)
        if not events:
            return None
        self.node_fault = self.node_fault or gpufaults.node_fault(events)
        addresses = gpu_addresses(self.ctx.paths)
        return gpufaults.worker_fault(events, s.gpus, addresses, self.ctx.services.gpu_index_of_uuid)

    # ---- cordon ----------------------------------------------------------

    def unschedulable_reason(self) -> str | None:
        """Why the node takes no traffic (a GPU fault, or the operator's cordon); None when it does."""
        return self.node_fault or (f"cordoned: {self.cordon}" if self.cordon is not None else None)

    async def set_cordon(self, reason: str | None) -> None:
        """Cordon the node for `reason`, or uncordon it (None); recorded before it takes effect."""
        if reason is None:
            await off_loop(clear_cordon, self.ctx.paths)
        else:
            await off_loop(write_cordon, self.ctx.paths, reason)
        was = self.cordon
        self.cordon = reason
        if was != reason:
            now = now_ns()
            kind = "node_uncordon" if reason is None else "node_cordon"
            self.ctx.events.add(Event(now, now, kind, NODE, 1.0, {"reason": reason or was or ""}))
            log.warning("node %s", f"cordoned: {reason}" if reason else "uncordoned")

    # ---- drain -----------------------------------------------------------

    async def drain(self, name: str, timeout: float | None, deregister_delay: float | None = None) -> dict[str, Any]:
        w = self.workers[name]
        timeout = w.settings.drain_timeout if timeout is None else timeout
        delay = w.settings.deregister_delay if deregister_delay is None else deregister_delay
        was_serving = w.up
        # Out of rotation first: /workers/NAME/ready answers 503 from here on.
        w.policy.phase = WorkerPhase.DRAINING
        t_out = time.monotonic()
        if was_serving and delay > 0:
            # vLLM would answer what balancers still send with empty "abort"
            # completions once SIGTERMed: give them time to stop sending.
            await asyncio.sleep(delay)
        t0 = time.monotonic()
        # SIGTERM to the API server: vLLM finishes in-flight requests for up to its
        # --shutdown-timeout (and aborts any that still arrive).
        drained = False
        try:
            await self.systemctl.kill(w.unit, "SIGTERM", who="main")
            while time.monotonic() - t0 < timeout:
                state = (await self.systemctl.show(w.unit, "ActiveState")).get("ActiveState")
                if state not in ACTIVE_STATES:
                    drained = True
                    break
                await asyncio.sleep(0.2)
            if not drained:
                # The operator's timeout is over: stop now, whatever is still in flight.
                await self.systemctl.kill(w.unit, "SIGKILL", who="all")
        except SystemctlError as e:
            w.last_problem = str(e)
        await self.systemctl.stop(w.unit, block=True, timeout=w.settings.shutdown_timeout + 30)
        w.policy.phase = WorkerPhase.DRAINED
        w.up = False
        self._event("worker_stop", w, reason="drain")
        w.wake.set()
        return {"worker": name, "drained": drained, "waited_s": round(time.monotonic() - t0, 3),
                "out_of_rotation_s": round(t0 - t_out, 3)}

    async def undrain(self, name: str) -> None:
        w = self.workers[name]
        w.policy.started(time.monotonic())
        w.startup_phases = {}
        await self.systemctl.start(w.unit)
        self._event("worker_start", w)
        w.wake.set()

    # ---- HTTP, metrics ---------------------------------------------------

    @classmethod
    def add_routes(cls, app: web.Application, live: Callable[[], WorkerSupervisor | None]) -> None:
        def off() -> web.Response:
            return off_response("no workers in the config: worker supervision is off")

        async def list_workers(_: web.Request) -> web.Response:
            if (self := live()) is None:
                return off()
            reason = self.unschedulable_reason()
            return web.json_response({"workers": [w.status(self.cordon) for w in self.workers.values()],
                                      "schedulable": reason is None, "reason": reason or "",
                                      "cordoned": self.cordon is not None})

        def named(request: web.Request) -> tuple[WorkerSupervisor | None, str, web.Response | None]:
            """(the live supervisor, the worker name, None), or a refusal to answer
            with: 503 while supervision is off, 404 for a worker not configured."""
            self = live()
            name = request.match_info["name"]
            if self is None:
                return None, name, off()
            if name not in self.workers:
                return self, name, web.json_response({"error": f"no worker named {name!r}"}, status=404)
            return self, name, None

        async def drain(request: web.Request) -> web.Response:
            self, name, refusal = named(request)
            if refusal is not None:
                return refusal
            assert self is not None  # named() refuses whenever supervision is off
            try:
                timeout = _seconds_query(request, "timeout")
                delay = _seconds_query(request, "deregister_delay")
            except ValueError as e:
                return web.json_response({"error": str(e)}, status=400)
            return web.json_response(await self.drain(name, timeout, delay))

        async def ready(request: web.Request) -> web.Response:
            # For load balancers' health checks: 200 only while serving and healthy.
            self, name, refusal = named(request)
            if refusal is not None:
                return refusal
            assert self is not None  # named() refuses whenever supervision is off
            ok, why = self.workers[name].readiness(self.cordon)
            return web.json_response({"worker": name, "ready": ok, "reason": why}, status=200 if ok else 503)

        async def start(request: web.Request) -> web.Response:
            self, name, refusal = named(request)
            if refusal is not None:
                return refusal
            assert self is not None  # named() refuses whenever supervision is off
            if self.workers[name].policy.phase is WorkerPhase.GPU_FAULT:
                return web.json_response({"error": f"{name} was stopped for a GPU fault; fix the GPU and "
                                                   "restart the agent"}, status=409)
            await self.undrain(name)
            return web.json_response({"worker": name, "started": True})

        async def cordon(request: web.Request) -> web.Response:
            if (self := live()) is None:
                return off()
            try:
                reason = check_reason(request.query.get("reason", ""))
            except CordonError as e:
                return web.json_response({"error": str(e)}, status=400)
            await self.set_cordon(reason)
            return web.json_response({"cordoned": True, "reason": reason, "schedulable": False})

        async def uncordon(_: web.Request) -> web.Response:
            if (self := live()) is None:
                return off()
            await self.set_cordon(None)
            reason = self.unschedulable_reason()
            return web.json_response({"cordoned": False, "schedulable": reason is None, "reason": reason or ""})

        app.router.add_post("/node/cordon", cordon)
        app.router.add_post("/node/uncordon", uncordon)
        app.router.add_get("/workers", list_workers)
        app.router.add_get("/workers/{name}/ready", ready)
        app.router.add_post("/workers/{name}/drain", drain)
        app.router.add_post("/workers/{name}/start", start)

    def samples(self) -> Iterable[Sample]:
        for w in self.workers.values():
            labels = {"worker": w.settings.name}
            yield WORKER_UP.emit(labels, 1.0 if w.up else 0.0)
            yield WORKER_READY.emit(labels, 1.0 if w.readiness(self.cordon)[0] else 0.0)
            if w.vllm_version or w.model:
                yield WORKER_INFO.emit({**labels, "vllm_version": w.vllm_version or "unknown",
                                                       "model_name": w.model or "unknown"}, 1.0)
            for phase, seconds in list(w.startup_phases.items()):
                yield WORKER_STARTUP_PHASE_SECONDS.emit({**labels, "phase": phase}, seconds)
            yield WORKER_SCRAPE_UP.emit(labels, 1.0 if w.scrape_up else 0.0)
            yield WORKER_SCRAPE_MALFORMED_TOTAL.emit(labels, float(w.scrape_malformed))
            for reason, n in sorted(w.restarts.items()):
                yield WORKER_RESTARTS_TOTAL.emit({**labels, "reason": reason}, float(n))
            yield from w.vllm_samples
        # The metric's reason is a short word: a GPU fault's, or "cordoned" (its text is in GET /workers).
        reason = self.node_fault or ("cordoned" if self.cordon is not None else "")
        yield NODE_SCHEDULABLE.emit({"reason": reason}, 0.0 if reason else 1.0)

    def doctor(self) -> Iterable[DoctorRow]:
        return doctor_rows([w.status(self.cordon) for w in list(self.workers.values())])

    @classmethod
    def doctor_offline(cls, config: WorkerConfig, paths: Paths) -> list[DoctorRow]:
        """Rows for `infernode doctor`: the workers as the running agent sees them."""
        if not config.workers:
            return []
        from agent.worker.cli import agent_base_url, fetch_json

        url = agent_base_url(config.server.listen) + "/workers"
        try:
            data = fetch_json(url, timeout=3)
        except (OSError, ValueError) as e:
            return [DoctorRow("worker", "supervisor", "warn", f"cannot ask the agent at {url}: {e}",
                              "systemctl status infernode")]
        return doctor_rows(data.get("workers", []))


def doctor_rows(statuses: Iterable[dict[str, Any]]) -> list[DoctorRow]:
    """One row per worker from its status() (here or from the agent's GET /workers)."""
    rows = []
    for w in statuses:
        name, why = w["worker"], w.get("ready_reason", "")
        version = f"vLLM {w['vllm_version']}, " if w.get("vllm_version") else ""
        if w.get("ready"):
            rows.append(DoctorRow("worker", name, "ok", f"{version}{w.get('model') or 'model unknown'}: {why}"))
        elif w.get("phase") == WorkerPhase.REFUSED.value:
            rows.append(DoctorRow("worker", name, "fail", w.get("problem", why),
                                  "fix the worker's command or vLLM install, then `systemctl reload infernode` "
                                  f"or POST /workers/{name}/start"))
        elif w.get("phase") in (WorkerPhase.STARTING.value, WorkerPhase.DRAINING.value, WorkerPhase.DRAINED.value):
            rows.append(DoctorRow("worker", name, "warn", why))
        elif why.startswith("node cordoned"):
            rows.append(DoctorRow("worker", name, "warn", f"serving, out of rotation: {why}",
                                  "`infernode uncordon` puts it back"))
        else:
            rows.append(DoctorRow("worker", name, "fail", why, f"journalctl -u {w.get('unit', '')}"))
    return rows


def _monotonic_s(usec: str | None) -> float | None:
    """systemd's *TimestampMonotonic (microseconds, 0 for never) -> seconds."""
    try:
        v = int(usec or 0)
    except ValueError:
        return None
    return v / 1e6 if v > 0 else None


def _seconds_query(request: web.Request, key: str) -> float | None:
    raw = request.query.get(key)
    if raw is None:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{key} {raw[:40]!r} is not a number of seconds") from None
    if not (0 <= v <= 86400):
        raise ValueError(f"{key} {raw[:40]!r} must be between 0 and 86400 seconds")
    return v
