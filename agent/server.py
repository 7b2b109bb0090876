"""The agent's HTTP endpoint: /metrics, /healthz, /readyz (one port)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from agent.catalog import Catalog
from agent.exposition import render, wants_openmetrics
from agent.runtime import in_daemon_thread
from agent.samples import Sample


def build_app(
    scrape: Callable[[], tuple[list[Sample], Catalog]],
    readiness: Callable[[], tuple[bool, dict[str, Any]]],
    extra_routes: list[Callable[[web.Application], None]] | None = None,
) -> web.Application:
    """`scrape` runs one collection (in a daemon thread) and says which catalog it
    is rendered against; `readiness` answers /readyz. Both are asked per request,
    so a reload that replaces the collectors is seen at once."""
    app = web.Application(client_max_size=1024 * 1024)

    async def metrics(request: web.Request) -> web.Response:
        openmetrics = wants_openmetrics(request.headers.get("Accept"))

        def scrape_and_render() -> tuple[bytes, str]:
            samples, catalog = scrape()
            return render(samples, catalog, openmetrics=openmetrics)

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
        ready, detail = readiness()
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for add in extra_routes or []:
        add(app)
    return app
