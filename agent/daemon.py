"""The agent daemon: asyncio, one HTTP port, signals, reload, sd_notify.

SIGTERM/SIGINT stop within 5 s. SIGHUP reloads the config: an invalid new config
is logged and counted and the old one keeps running. READY=1 is sent once the
server listens; watchdog pings come from the event loop itself, so a wedged loop
stops pinging and systemd restarts the agent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from agent import sdnotify
from agent.config import ConfigError, load_config
from agent.node import Node
from agent.paths import Paths
from agent.server import build_app
from agent.subsystem import Subsystem, subsystem_classes
from agent.units import parse_listen

log = logging.getLogger("infernode.daemon")

SHUTDOWN_BUDGET_S = 5.0


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
    def __init__(self, config: Any, config_path: Path | None, paths: Paths) -> None:
        self.config = config
        self.config_path = config_path
        self.paths = paths
        self.services: dict[str, Any] = {}
        self.node = Node.build(config, paths, services=self.services)
        self.subsystems: list[Subsystem] = [
            cls(self) for cls in subsystem_classes() if cls.enabled(config)
        ]
        self.node.runtime.extra.extend(s.samples for s in self.subsystems)
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reload_lock = asyncio.Lock()
        self.listening: tuple[str, int] | None = None

    @property
    def events(self):  # noqa: ANN201 - the EventStore
        return self.node.events

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = self._runner is not None
        return ready, {
            "config": str(self.config_path or "<defaults>"),
            "collectors": [c.name for c in self.node.runtime.collectors],
            "subsystems": [s.name for s in self.subsystems],
        }

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        self.node.runtime.start()
        try:
            for s in self.subsystems:
                await s.start()
            await self._serve()
        except BaseException:
            await self._shutdown()
            raise
        sdnotify.notify("READY=1\nSTATUS=serving " + self._listen_text())
        interval = sdnotify.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self._watchdog(interval)))
        log.info("infernode serving", extra={"listen": self._listen_text(),
                                              "collectors": ",".join(c.name for c in self.node.runtime.collectors)})
        await self._stop.wait()
        sdnotify.notify("STOPPING=1")
        try:
            await asyncio.wait_for(self._shutdown(), timeout=SHUTDOWN_BUDGET_S)
        except asyncio.TimeoutError:
            log.warning("shutdown exceeded %.0fs; exiting anyway", SHUTDOWN_BUDGET_S)
        return 0

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
        self._runner, self.listening = await self._bind(self.config.server.listen)

    async def _bind(self, listen: str) -> tuple[web.AppRunner, tuple[str, int]]:
        host, port = parse_listen(listen)
        app = build_app(self, [s.add_routes for s in self.subsystems])
        # A scrape in flight at shutdown gets a short grace, not aiohttp's 60 s
        # (aiohttp waits it twice: for the handler, then for its cancellation).
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await runner.setup()
        site = web.TCPSite(runner, host or None, port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ListenError(listen, e) from e
        sockets = [s for s in (site._server.sockets if site._server else [])]  # noqa: SLF001
        bound = sockets[0].getsockname() if sockets else (host, port)
        return runner, (host, bound[1])

    async def _watchdog(self, interval: float) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def reload(self) -> bool:
        """Apply the config file again. All or nothing: the new config is
        validated, its collectors built and its listen address bound before the
        old ones are let go; any failure keeps the running config untouched."""
        async with self._reload_lock:
            sdnotify.notify("RELOADING=1")
            try:
                ok = await self._reload()
            finally:
                sdnotify.notify("READY=1")
            return ok

    def _reload_failed(self, why: str) -> bool:
        self.node.selfmetrics.reload_failures += 1
        self.node.selfmetrics.last_reload_ok = False
        log.error("config reload rejected; keeping the running config: %s", why)
        return False

    async def _reload(self) -> bool:
        try:
            new = load_config(self.config_path)
        except ConfigError as e:
            return self._reload_failed(str(e))
        old_node = self.node
        try:
            node = Node.build(new, self.paths, events=old_node.events, services=self.services)
        except Exception as e:  # a collector's constructor: isolate like the runtime does
            return self._reload_failed(f"building collectors: {type(e).__name__}: {e}")
        new_runner = None
        if new.server.listen != self.config.server.listen:
            try:
                new_runner, listening = await self._bind(new.server.listen)
            except ListenError as e:
                return self._reload_failed(str(e))
        node.events.max_bytes = new.events.max_bytes
        node.selfmetrics = old_node.selfmetrics
        node.selfmetrics.last_reload_ok = True
        node.runtime.extra = [node.selfmetrics.samples] + [s.samples for s in self.subsystems]
        old_node.runtime.stop()
        node.runtime.start()
        self.node = node
        self.config = new
        if new_runner is not None:
            old_runner, self._runner, self.listening = self._runner, new_runner, listening
            if old_runner is not None:
                await old_runner.cleanup()
        for s in self.subsystems:
            try:
                await s.reload(new)
            except Exception:
                log.exception("subsystem %s failed to reload", s.name)
        log.info("config reloaded", extra={"config": str(self.config_path), "listen": self._listen_text(),
                                           "collectors": ",".join(c.name for c in node.runtime.collectors)})
        return True

    async def _shutdown(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for s in reversed(self.subsystems):
            try:
                await s.stop()
            except Exception:
                log.exception("subsystem %s failed to stop", s.name)
        if self._runner is not None:
            await self._runner.cleanup()
        self.node.runtime.stop()
