"""Runs the agent's tracing subsystem and HTTP server on an event loop in a
background thread, so tests can drive it with the real (synchronous) OTLP
exporters and plain HTTP clients. Every port is 0 (the kernel picks)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agent.config import parse_config
from agent.daemon import Daemon
from agent.paths import Paths
from agent.plugins import subsystem_classes
from agent.tracing.subsystem import TracingSubsystem


class AgentLoop:
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"server": {"listen": "127.0.0.1:0"},
                                "otlp": {"http_listen": "127.0.0.1:0", "grpc_listen": "127.0.0.1:0"}}
        for k, v in (config or {}).items():
            data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
        self.config = parse_config(data, "<test>")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.daemon: Daemon | None = None

    def call(self, coro, timeout: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> AgentLoop:
        self.thread.start()

        async def start() -> Daemon:
            d = Daemon(self.config, None, Paths(), subsystem_classes())
            # Only the tracing subsystem: the others (tuning, worker) would read and
            # report on this host, which is not what these tests are about.
            d.subsystems = [s for s in d.subsystems if isinstance(s, TracingSubsystem)]
            d.telemetry.runtime.extra = [d.telemetry.selfmetrics.samples] + [s.samples for s in d.subsystems]
            for s in d.subsystems:
                await s.start()
            await d._serve()  # noqa: SLF001 - the daemon's own server, without its signal handling
            return d

        self.daemon = self.call(start())
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.daemon is not None
            await self.daemon._shutdown()  # noqa: SLF001

        try:
            self.call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    @property
    def tracing(self) -> TracingSubsystem:
        assert self.daemon is not None
        return next(s for s in self.daemon.subsystems if isinstance(s, TracingSubsystem))

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.tracing.http_address[1]}/v1/traces"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.tracing.grpc_address[1]}"

    @property
    def agent_url(self) -> str:
        assert self.daemon is not None and self.daemon.listening
        return f"http://127.0.0.1:{self.daemon.listening[1]}"

    def flush(self) -> None:
        """Wait until the ingest thread has processed everything submitted so far."""
        pipeline = self.tracing._pipeline  # noqa: SLF001
        assert pipeline is not None
        pipeline.submit(lambda: None).result(10)
