"""The agent's HTTP endpoint: /metrics, /healthz, /readyz (one port)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from agent.exposition import render, wants_openmetrics
from agent.runtime import in_daemon_thread

if TYPE_CHECKING:
    from agent.daemon import Daemon


def build_app(daemon: "Daemon", extra_routes: list[Callable[[web.Application], None]] | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def metrics(request: web.Request) -> web.Response:
        node = daemon.node
        openmetrics = wants_openmetrics(request.headers.get("Accept"))

        def scrape_and_render() -> tuple[bytes, str]:
            return render(node.runtime.scrape(), node.catalog, openmetrics=openmetrics)

        # Off the event loop (so /healthz and the watchdog keep answering), and in
        # a daemon thread rather than the loop's default executor, which the
        # interpreter would wait for at exit.
        body, ctype = await asyncio.wrap_future(in_daemon_thread(scrape_and_render))
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = ctype
        return resp

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, detail = daemon.readiness()
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for add in extra_routes or []:
        add(app)
    return app
