"""OTLP/gRPC trace receiver (opentelemetry.proto.collector.trace.v1.TraceService/Export).

The method is registered with raw bytes in, so the receiver decodes (and counts
what it rejects) itself: INVALID_ARGUMENT for a message that does not decode,
RESOURCE_EXHAUSTED over the size limit. gRPC's own transport limit is set a few
times higher as a hard stop for what is too big to even read; a call gRPC ends
before its message reaches the handler (over that limit, a compressed message
that inflates past it, or a sender that gave up mid-message) is counted too, as
`not_received`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agent.config_types import ConnectionSettings
from agent.tracing.spans import PayloadError, decode_export
from agent.untyped import GrpcHandler

log = logging.getLogger("infernode.tracing.grpc")

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

Handler = Callable[[ExportTraceServiceRequest], Awaitable[None]]
Reject = Callable[[str], None]


def _refuse(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    # Status set and no response, rather than context.abort(): abort raises, and the
    # exception's traceback keeps the handler's frame, and with it the refused
    # payload, alive until a garbage collection (measured: 40 refused 10 MB
    # exports held 260 MB more until gc.collect()).
    context.set_code(code)
    context.set_details(details)


class _CountUnreceived(grpc.aio.ServerInterceptor):
    """Counts the calls gRPC ends before their message reaches the handler.

    gRPC checks the transport limit (and inflates compressed messages) in its core,
    after the call has started but before the handler runs, and answers the sender
    itself. The interceptor runs inside the call's task when the call starts; a call
    whose task ends without the handler having run was refused (or abandoned) there.
    """

    def __init__(self, reject: Reject) -> None:
        self._reject = reject

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[GrpcHandler]],
                                details: grpc.HandlerCallDetails) -> GrpcHandler:
        handler = await continuation(details)
        task = asyncio.current_task()
        if handler is None or handler.unary_unary is None or task is None:
            return handler
        received = False
        behaviour = handler.unary_unary

        async def export(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            nonlocal received
            received = True
            return await behaviour(raw, context)

        def ended(_: asyncio.Task[Any]) -> None:
            if not received:
                self._reject("not_received")

        task.add_done_callback(ended)
        return grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def build_grpc_server(handle: Handler, reject: Reject, max_payload: int,
                      connections: ConnectionSettings | None = None) -> grpc.aio.Server:
    """`reject(reason)` is called once per refused call, after its payload has been let go."""

    async def export(raw: bytes, context: grpc.aio.ServicerContext) -> ExportTraceServiceResponse | None:
        # The payload is let go before anything is awaited: the handler's frame lives
        # as long as the call does.
        size = len(raw)
        req, error = None, None
        if size <= max_payload:
            try:
                req = decode_export(raw)
            except PayloadError as e:
                error = e
        del raw
        if req is None:
            if error is None:
                reject("too_large")
                _refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"export request of {size} bytes exceeds {max_payload}")
                return None
            reject(error.reason)
            _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
            return None
        await handle(req)
        return ExportTraceServiceResponse()

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(
            export,
            request_deserializer=None,
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        ),
    })
    hard_limit = max(4 * max_payload, 4 * 1024 * 1024)
    limits = connections or ConnectionSettings()
    setup_ms = int(limits.header_timeout * 1000)
    server = grpc.aio.server(interceptors=[_CountUnreceived(reject)], options=[
        ("grpc.max_receive_message_length", hard_limit),
        ("grpc.so_reuseport", 0),
        # gRPC closes the connection beyond this itself (measured: the socket is
        # closed on arrival), and does not tell the application.
        ("grpc.max_allowed_incoming_connections", limits.max),
        # A connection that never completes its HTTP/2 set-up (gRPC's defaults: 120 s
        # and a minute or more) is closed after the header timeout.
        ("grpc.server_handshake_timeout_ms", setup_ms),
        ("grpc.http2.settings_timeout", setup_ms),
        ("grpc.max_connection_idle_ms", int(limits.idle_timeout * 1000)),
    ])
    server.add_generic_rpc_handlers((handler,))
    return server
