"""The agent's HTTP endpoint: /metrics, /healthz, /readyz (one port)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from agent.exposition import render, wants_openmetrics

if TYPE_CHECKING:
    from agent.daemon import Daemon


def build_app(daemon: "Daemon", extra_routes: list[Callable[[web.Application], None]] | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def metrics(request: web.Request) -> web.Response:
        node = daemon.node
        samples = await asyncio.get_running_loop().run_in_executor(None, node.runtime.scrape)
        body, ctype = render(samples, node.catalog, openmetrics=wants_openmetrics(request.headers.get("Accept")))
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
