"""OTLP/HTTP trace receiver: POST /v1/traces, binary protobuf (and OTLP/JSON).

Errors follow the OTLP/HTTP specification: 400 for a body that does not decode,
413 over the size limit, 415 for another content type, each with a google.rpc.Status
body, and each counted by reason. A handler never raises past this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agent.tracing.otlp_json import decode_export_json
from agent.tracing.spans import PayloadError, decode_export, decompress

log = logging.getLogger("infernode.tracing.http")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACES_PATH = "/v1/traces"

Handler = Callable[[ExportTraceServiceRequest], Awaitable[None]]
Reject = Callable[[str], None]

_STATUS = {"too_large": 413, "content_type": 415, "unsupported_encoding": 415}


def _error(status: int, message: str, as_json: bool) -> web.Response:
    code = code_pb2.RESOURCE_EXHAUSTED if status == 413 else code_pb2.INVALID_ARGUMENT
    st = status_pb2.Status(code=code, message=message)
    if as_json:
        return web.json_response({"code": code, "message": message}, status=status)
    return web.Response(status=status, body=st.SerializeToString(), content_type=PROTOBUF)


def build_receiver_app(handle: Handler, reject: Reject, max_payload: int, body_timeout: float = 30.0) -> web.Application:
    # aiohttp enforces the limit on the raw body itself (413) before our handler runs.
    app = web.Application(client_max_size=max_payload)

    async def traces(request: web.Request) -> web.Response:
        ctype = request.content_type
        as_json = ctype == JSON
        if ctype not in (PROTOBUF, JSON):
            reject("content_type")
            return _error(415, f"content type {ctype!r} is not supported; send {PROTOBUF} or {JSON}", False)
        if request.content_length is not None and request.content_length > max_payload:
            reject("too_large")
            return _error(413, f"payload of {request.content_length} bytes exceeds {max_payload}", as_json)
        try:
            async with asyncio.timeout(body_timeout):
                raw = await request.read()
        except TimeoutError:
            reject("body_timeout")
            return _error(408, f"body not received within {body_timeout:g} s", as_json)
        except web.HTTPRequestEntityTooLarge:
            reject("too_large")
            return _error(413, f"payload exceeds {max_payload} bytes", as_json)
        except (ConnectionError, OSError) as e:  # client went away mid-body
            reject("truncated")
            return _error(400, f"body not received: {e}", as_json)
        try:
            body = decompress(raw, request.headers.get("Content-Encoding"), max_payload)
            req = decode_export_json(body) if as_json else decode_export(body)
        except PayloadError as e:
            reject(e.reason)
            return _error(_STATUS.get(e.reason, 400), str(e), as_json)
        await handle(req)
        if as_json:
            return web.json_response({})
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF)

    async def wrong_method(_: web.Request) -> web.Response:
        return web.Response(status=405, text="POST OTLP export requests to /v1/traces\n")

    app.router.add_post(TRACES_PATH, traces)
    app.router.add_get(TRACES_PATH, wrong_method)
    return app
