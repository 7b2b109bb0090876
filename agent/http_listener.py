"""One aiohttp application served on a listener that bounds its connections.

aiohttp alone holds any number of connections, and gives a client that trickles
its request head (a byte every few seconds) as long as it likes: 1,000 such
sockets on one port took the agent to its file-descriptor limit, and /metrics
stopped answering. Each listener therefore has
- a connection cap: the connection over it is answered `503` and closed at once;
- a header timeout: from a request's first byte to the end of its headers;
- an idle timeout: a connection with no request in progress (aiohttp's keep-alive
  timer, which runs from the connection's start too, so a socket that never sends
  a byte is closed by it);
and counts what each of them closed, per listener.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from agent.config_types import ConnectionSettings
from agent.samples import Sample
from agent.specs import HTTP_CONNECTIONS, HTTP_CONNECTIONS_CLOSED_TOTAL

BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 38\r\n\r\nconnection limit reached; retry later\n")


@dataclass
class ListenerStats:
    name: str
    open: int = 0
    closed: dict[str, int] = field(default_factory=lambda: {"over_capacity": 0, "header_timeout": 0})

    def samples(self) -> list[Sample]:
        out = [HTTP_CONNECTIONS.emit({"listener": self.name}, float(self.open))]
        out += [HTTP_CONNECTIONS_CLOSED_TOTAL.emit({"listener": self.name, "reason": r}, float(n))
                for r, n in sorted(self.closed.items())]
        return out


class _Guard(asyncio.Protocol):
    """Sits between the transport and aiohttp's protocol for one connection."""

    def __init__(self, listener: GuardedListener, inner: asyncio.Protocol) -> None:
        self._listener = listener
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self.in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        lst = self._listener
        assert isinstance(transport, asyncio.Transport)
        if lst.stats.open >= lst.limits.max:
            lst.stats.closed["over_capacity"] += 1
            transport.write(BUSY)
            transport.close()
            return
        self._transport = transport
        lst.stats.open += 1
        lst.guards[transport] = self
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if not self.in_request and self._head_timer is None:
            loop = asyncio.get_running_loop()
            self._head_timer = loop.call_later(self._listener.limits.header_timeout, self._head_timed_out)
        self._inner.data_received(data)

    def request_started(self) -> None:
        self.in_request = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def request_ended(self) -> None:
        self.in_request = False

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._transport is not None and not self.in_request:
            self._listener.stats.closed["header_timeout"] += 1
            self._transport.abort()

    def eof_received(self) -> bool | None:
        if self._transport is None:
            return None
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._transport is None:
            return
        self._listener.guards.pop(self._transport, None)
        self._listener.stats.open -= 1
        self._transport = None
        self._inner.connection_lost(exc)


class GuardedListener:
    """Serves one aiohttp application: `serve()`, then `cleanup()` (as an AppRunner's)."""

    def __init__(self, stats: ListenerStats, limits: ConnectionSettings) -> None:
        # Read at each use, so a reload may replace them; the idle timeout is aiohttp's
        # and holds for the connections of this listener's lifetime.
        self.limits = limits
        self.stats = stats
        self.guards: dict[asyncio.BaseTransport, _Guard] = {}
        self._server: asyncio.AbstractServer | None = None
        self._runner: web.AppRunner | None = None

    def _attach(self, app: web.Application) -> None:
        @web.middleware
        async def track(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
            guard = self.guards.get(request.transport) if request.transport is not None else None
            if guard is not None:
                guard.request_started()
            try:
                return await handler(request)
            finally:
                if guard is not None:
                    guard.request_ended()

        app.middlewares.insert(0, track)

    async def serve(self, app: web.Application, host: str, port: int, *, shutdown_timeout: float,
                    auto_decompress: bool = True) -> tuple[str, int]:
        """Bind host:port (host "" for every address) and serve; the bound address. OSError: nothing is left open."""
        self._attach(app)
        # No access log and no signal handling: the daemon owns both.
        runner = web.AppRunner(app, keepalive_timeout=self.limits.idle_timeout, access_log=None, handle_signals=False,
                               shutdown_timeout=shutdown_timeout, auto_decompress=auto_decompress)
        await runner.setup()
        protocol = runner.server
        assert protocol is not None
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Guard(self, protocol()), host or None, port,
                reuse_address=True, backlog=min(self.limits.max, socket.SOMAXCONN))
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        sock = self._server.sockets[0] if self._server.sockets else None
        return host, (sock.getsockname()[1] if sock else port)

    async def cleanup(self) -> None:
        """Stop listening, then let aiohttp finish or close the connections it holds."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
