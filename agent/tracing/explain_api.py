"""GET /debug/explain?trace_id= and GET /debug/slow?since=5m&top=10 (JSON).

Only requests the agent saw (and still keeps) are answered; an unknown trace id is
a 404 that says so. With `explain.token` set, both need `Authorization: Bearer`.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable

from aiohttp import web

from agent.tracing.recent import RecentRequests
from agent.units import parse_duration

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def authorized(header: str | None, token: str | None) -> bool:
    if not token:
        return True
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def add_explain_routes(app: web.Application, recent: Callable[[], RecentRequests | None],
                       token: Callable[[], str | None]) -> None:
    def guard(request: web.Request) -> web.Response | None:
        if not authorized(request.headers.get("Authorization"), token()):
            resp = _bad("missing or wrong bearer token (explain.token)", 401)
            resp.headers["WWW-Authenticate"] = 'Bearer realm="infernode"'
            return resp
        if recent() is None:
            return _bad("the OTLP receiver is not running (otlp.enabled is false)", 503)
        return None

    async def explain(request: web.Request) -> web.Response:
        if (denied := guard(request)) is not None:
            return denied
        trace_id = request.query.get("trace_id", "")
        if not _TRACE_ID.match(trace_id):
            return _bad(f"trace_id {trace_id!r} is not 32 hex digits")
        found = recent().by_trace(trace_id.lower())  # type: ignore[union-attr]
        if not found:
            return _bad(f"trace {trace_id} was not seen by this agent (or is older than it keeps)", 404)
        return web.json_response({"trace_id": trace_id.lower(), "requests": [ex.to_json() for ex in found]})

    async def slow(request: web.Request) -> web.Response:
        if (denied := guard(request)) is not None:
            return denied
        try:
            since_s = parse_duration(request.query.get("since", "5m"))
        except ValueError as e:
            return _bad(f"since: {e}")
        top_raw = request.query.get("top", "10")
        if not top_raw.isdigit() or not 1 <= int(top_raw) <= 1000:
            return _bad(f"top {top_raw!r} must be a whole number from 1 to 1000")
        since_ns = time.time_ns() - int(since_s * 1e9)
        rows, seen = recent().slow(since_ns, int(top_raw))  # type: ignore[union-attr]
        return web.json_response({
            "since_seconds": since_s,
            "requests_seen": seen,
            "slow": [ex.to_json(with_events=False) for ex in rows],
        })

    app.router.add_get("/debug/explain", explain)
    app.router.add_get("/debug/slow", slow)
