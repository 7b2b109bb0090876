"""The agent daemon: asyncio, one HTTP port, signals, reload, sd_notify.

SIGTERM/SIGINT stop within 5 s: subsystems (last first), the HTTP server and the
collectors share one SHUTDOWN_BUDGET_S, each awaited with what is left of it (less
a small reserve for the parts after it); one that overruns is named in the log
and abandoned, and the shutdown goes on. Nothing the shutdown waits for blocks
the event loop, and blocking work runs in daemon threads, which the interpreter's
exit does not wait for. A stop signal that arrives while the daemon is still
starting ends the start-up.

SIGHUP reloads the config: an invalid new config is logged and counted and the old
one keeps running. A valid one is applied, then subsystems follow it: those it
turns off are stopped, those it turns on are started (a start that fails is logged
and counted as a failed reload, and leaves the rest of the new config applied; the
next reload tries it again). READY=1 is sent once the server listens; watchdog
pings come from the event loop itself, so a wedged loop stops pinging and systemd
restarts the agent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from agent import sdnotify
from agent.catalog import Catalog
from agent.config import ConfigError, load_config
from agent.config_types import ConnectionSettings
from agent.events import EventStore
from agent.http_listener import GuardedListener, ListenerStats
from agent.paths import Paths
from agent.plugins import Config
from agent.runtime import cancel_and_wait, off_loop
from agent.samples import Sample
from agent.server import build_app
from agent.services import Services
from agent.subsystem import Subsystem, SubsystemContext
from agent.telemetry import Telemetry
from agent.units import parse_listen

log = logging.getLogger("infernode.daemon")

# What the shutdown may wait for, all of it: the stop signal to exit is promised in
# 5 s, and the interpreter's exit takes the rest. (systemd's TimeoutStopSec is 15 s.)
SHUTDOWN_BUDGET_S = 4.5
# Kept back from a part of the shutdown for each part still to stop after it.
STOP_RESERVE_S = 0.25


class ListenError(OSError):
    """The configured listen address cannot be bound (in use, not local, ...)."""

    def __init__(self, listen: str, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"cannot listen on {listen}: {reason}")
        self.listen = listen
        self.reason = reason

    def __str__(self) -> str:
        return self.strerror or ""


class Daemon:
    """`subsystem_classes` in start order (agent.plugins.subsystem_classes() in the
    product): each runs while the config enables it, and they stop in reverse."""

    def __init__(self, config: Config, config_path: Path | None, paths: Paths,
                 subsystem_classes: Sequence[type[Subsystem[Config]]]) -> None:
        self.subsystem_classes = tuple(subsystem_classes)
        self.config = config
        self.config_path = config_path
        self.paths = paths
        self.services = Services()
        self.listener_stats = ListenerStats("server")
        self.telemetry = Telemetry.build(config, paths, services=self.services)
        # Replaced, never changed in place: a scrape thread may be iterating it.
        self.subsystems: list[Subsystem[Config]] = [
            cls(self._context()) for cls in self.subsystem_classes if cls.enabled(config)
        ]
        self.telemetry.runtime.extra += [self.subsystem_samples, self.listener_stats.samples]
        self._runner: GuardedListener | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_lock = asyncio.Lock()
        self.listening: tuple[str, int] | None = None

    @property
    def events(self) -> EventStore:
        return self.telemetry.events

    def _context(self) -> SubsystemContext[Config]:
        return SubsystemContext(self.paths, self.telemetry.events, self.services, self.config, self.config_path)

    def subsystem_samples(self) -> Iterable[Sample]:
        for s in tuple(self.subsystems):
            yield from s.samples()

    def scrape(self) -> tuple[list[Sample], Catalog]:
        """One collection for /metrics, from the collectors serving now."""
        telemetry = self.telemetry
        return telemetry.runtime.scrape(), telemetry.catalog

    def running(self, cls: type[Subsystem[Config]]) -> Subsystem[Config] | None:
        """The running instance of a subsystem class, None while the config has it off."""
        return next((s for s in self.subsystems if type(s) is cls), None)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = self._runner is not None
        return ready, {
            "config": str(self.config_path or "<defaults>"),
            "collectors": [c.name for c in self.telemetry.runtime.collectors],
            "subsystems": [s.name for s in self.subsystems],
        }

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        self.telemetry.runtime.start()
        starting = asyncio.ensure_future(self._start())
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                # Stopped while a subsystem was still starting (a tuning run, a slow
                # systemd): the start-up is abandoned, not waited for.
                await cancel_and_wait(starting)
                log.info("stop requested while starting")
                sdnotify.notify("STOPPING=1")
                await self._shutdown()
                return 0
            starting.result()
        except BaseException:
            await self._shutdown()
            raise
        finally:
            stopping.cancel()
        sdnotify.notify("READY=1\nSTATUS=serving " + self._listen_text())
        interval = sdnotify.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self._watchdog(interval)))
        log.info("infernode serving", extra={"listen": self._listen_text(),
                                              "collectors": ",".join(c.name for c in self.telemetry.runtime.collectors)})
        await self._stop.wait()
        sdnotify.notify("STOPPING=1")
        await self._shutdown()
        return 0

    async def _start(self) -> None:
        # A SIGHUP meanwhile waits: a reload would reload subsystems not yet started.
        async with self._reload_lock:
            for s in self.subsystems:
                await s.start()
            await self._serve()

    def stop(self) -> None:
        self._stop.set()

    def _on_sighup(self) -> None:
        # Keep a reference: the loop holds tasks weakly, and a reload must not be
        # garbage-collected half-way.
        task = asyncio.ensure_future(self.reload())
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def _listen_text(self) -> str:
        if not self.listening:
            return "-"
        host, port = self.listening
        return f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"

    async def _serve(self) -> None:
        self._runner, self.listening = await self._bind(self.config.server.listen, self.config.server.connections)

    async def _bind(self, listen: str, connections: ConnectionSettings) -> tuple[GuardedListener, tuple[str, int]]:
        host, port = parse_listen(listen)
        # Every subsystem's routes, running or not: a reload may turn one on later,
        # and a serving app takes no new routes. live() finds the running instance.
        app = build_app(self.scrape, self.readiness,
                        [functools.partial(cls.add_routes, live=functools.partial(self.running, cls))
                         for cls in self.subsystem_classes])
        # A scrape in flight at shutdown gets a short grace, not aiohttp's 60 s
        # (aiohttp waits it twice: for the handler, then for its cancellation).
        listener = GuardedListener(self.listener_stats, connections)
        try:
            bound = await listener.serve(app, host, port, shutdown_timeout=0.25)
        except OSError as e:
            raise ListenError(listen, e) from e
        return listener, bound

    async def _watchdog(self, interval: float) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def reload(self) -> bool:
        """Apply the config file again. All or nothing up to the subsystems: the
        new config is validated, its collectors built and its listen address bound
        before the old ones are let go, and any failure there keeps the running
        config untouched. Subsystems then follow the applied config
        (_follow_config), where a failure does not undo it."""
        async with self._reload_lock:
            sdnotify.notify("RELOADING=1")
            try:
                ok = await self._reload()
            finally:
                sdnotify.notify("READY=1")
            return ok

    def _reload_failed(self, why: str) -> bool:
        self.telemetry.selfmetrics.reload_failures += 1
        self.telemetry.selfmetrics.last_reload_ok = False
        log.error("config reload rejected; keeping the running config: %s", why)
        return False

    async def _reload(self) -> bool:
        # Off the loop: reading and validating a pathological file must not stall
        # /metrics. Any failure, however unexpected, is a counted, rejected reload.
        try:
            new = await off_loop(load_config, self.config_path)
        except ConfigError as e:
            return self._reload_failed(str(e))
        except Exception as e:  # noqa: BLE001 - the running config stays whatever the file holds
            return self._reload_failed(f"reading the config: {type(e).__name__}: {str(e)[:200]}")
        old = self.telemetry
        try:
            telemetry = Telemetry.build(new, self.paths, events=old.events, services=self.services)
        except Exception as e:  # noqa: BLE001 - a collector's constructor: isolate it as the runtime does
            return self._reload_failed(f"building collectors: {type(e).__name__}: {e}")
        new_runner = None
        if new.server.listen != self.config.server.listen:
            try:
                new_runner, listening = await self._bind(new.server.listen, new.server.connections)
            except ListenError as e:
                return self._reload_failed(str(e))
        telemetry.events.max_bytes = new.events.max_bytes
        telemetry.selfmetrics = old.selfmetrics
        telemetry.selfmetrics.last_reload_ok = True
        telemetry.runtime.extra = [telemetry.selfmetrics.samples, self.subsystem_samples, self.listener_stats.samples]
        # Collectors start promptly (their slow work is in their own threads), and
        # scrapes move to the new ones at once; the old ones' stop joins threads
        # for seconds, so it runs off the loop.
        telemetry.runtime.start()
        self.telemetry = telemetry
        self.config = new
        await off_loop(old.runtime.stop)
        if new_runner is not None:
            old_runner, self._runner, self.listening = self._runner, new_runner, listening
            if old_runner is not None:
                await old_runner.cleanup()
        elif self._runner is not None:
            self._runner.limits = new.server.connections
        ok = await self._follow_config(new)
        log.info("config reloaded", extra={"config": str(self.config_path), "listen": self._listen_text(),
                                           "collectors": ",".join(c.name for c in telemetry.runtime.collectors),
                                           "subsystems": ",".join(s.name for s in self.subsystems)})
        return ok

    async def _follow_config(self, config: Config) -> bool:
        """Subsystems as the newly applied config wants them, in start order
        (tuning before the worker: the worker reads what tuning publishes).
        False when one it turns on failed to start: that is counted as a failed
        reload, but the config stays applied (its collectors and listen address
        already serve) and the next reload tries the start again."""
        wanted = [cls for cls in self.subsystem_classes if cls.enabled(config)]
        for s in reversed(self.subsystems):
            if type(s) not in wanted:
                # Not bounded like a shutdown: the worker supervisor stops each of its
                # units here, one systemctl call (with its own timeout) apiece.
                try:
                    await s.turn_off(config)
                    log.info("subsystem %s stopped: the config turns it off", s.name)
                except Exception:
                    log.exception("subsystem %s failed to stop", s.name)
                self.subsystems = [x for x in self.subsystems if x is not s]
                self.services.withdraw(s)
        ok = True
        for cls in wanted:
            running = self.running(cls)
            if running is not None:
                try:
                    await running.reload(config)
                except Exception:
                    log.exception("subsystem %s failed to reload", running.name)
                continue
            try:
                s = cls(self._context())
                # Listed before it starts, so a shutdown meanwhile stops it too.
                self.subsystems = self._in_order([*self.subsystems, s])
                await s.start()
                log.info("subsystem %s started: the config turns it on", s.name)
            except Exception as e:
                log.error("config reload incomplete: subsystem %s did not start (%s: %s); the rest of the "
                          "new config is applied, and the next reload tries the start again",
                          cls.name, type(e).__name__, e, exc_info=True)
                if self.running(cls) is not None:
                    self.subsystems = [x for x in self.subsystems if type(x) is not cls]
                    # What it started before failing is let go (bounded, like a shutdown).
                    await self._bounded(s.stop(), f"subsystem {cls.name}", SHUTDOWN_BUDGET_S)
                    self.services.withdraw(s)
                self.telemetry.selfmetrics.reload_failures += 1
                self.telemetry.selfmetrics.last_reload_ok = False
                ok = False
        return ok

    def _in_order(self, subsystems: list[Subsystem[Config]]) -> list[Subsystem[Config]]:
        rank = {cls: i for i, cls in enumerate(self.subsystem_classes)}
        return sorted(subsystems, key=lambda s: rank.get(type(s), len(rank)))

    async def _bounded(self, aw: Awaitable[Any], what: str, timeout: float) -> None:
        """Await `aw` for `timeout` seconds; past that, name `what` in the log and
        abandon it."""
        timeout = max(0.0, timeout)
        try:
            await asyncio.wait_for(aw, timeout)
        except TimeoutError:
            log.warning("%s did not stop within %.1f s; abandoning it", what, timeout)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # A stop that lets a cancellation of its own escape has still ended.
            log.warning("%s was cancelled while stopping", what)
        except Exception:
            log.exception("%s failed to stop", what)

    async def _shutdown(self, budget: float = SHUTDOWN_BUDGET_S) -> None:
        """Stop everything within `budget` seconds, whatever any part of it does.
        Each part gets what is left of the budget less STOP_RESERVE_S for each part
        after it, so one that hangs cannot leave the others no time at all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        for t in list(self._tasks):
            t.cancel()
        # The collectors' stop joins their threads (and detaches eBPF programs, shuts
        # NVML down): in a daemon thread, which an exiting process does not wait for.
        def stop_collectors() -> Awaitable[Any]:
            return off_loop(self.telemetry.runtime.stop)

        # Last started, first stopped: the worker before tuning, whose CPU set it reads.
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (f"subsystem {s.name}", s.stop) for s in reversed(self.subsystems)]
        if self._runner is not None:
            steps.append(("the HTTP server", self._runner.cleanup))
        steps.append(("the collectors", stop_collectors))
        for i, (what, stop) in enumerate(steps):
            after = len(steps) - 1 - i
            await self._bounded(stop(), what, deadline - loop.time() - after * STOP_RESERVE_S)
        for s in self.subsystems:
            self.services.withdraw(s)
