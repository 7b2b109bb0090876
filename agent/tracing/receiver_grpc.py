"""OTLP/gRPC trace receiver (opentelemetry.proto.collector.trace.v1.TraceService/Export).

The method is registered with raw bytes in, so the receiver decodes (and counts
what it rejects) itself: INVALID_ARGUMENT for a message that does not decode,
RESOURCE_EXHAUSTED over the size limit. gRPC's own transport limit is set a few
times higher as a hard stop for what is too big to even read.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agent.tracing.spans import PayloadError, decode_export

log = logging.getLogger("infernode.tracing.grpc")

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

Handler = Callable[[ExportTraceServiceRequest], Awaitable[None]]
Reject = Callable[[str], None]


def build_grpc_server(handle: Handler, reject: Reject, max_payload: int) -> grpc.aio.Server:
    async def export(raw: bytes, context: grpc.aio.ServicerContext) -> ExportTraceServiceResponse:
        if len(raw) > max_payload:
            reject("too_large")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"export request of {len(raw)} bytes exceeds {max_payload}")
        try:
            req = decode_export(raw)
        except PayloadError as e:
            reject(e.reason)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
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
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", hard_limit),
        ("grpc.so_reuseport", 0),
    ])
    server.add_generic_rpc_handlers((handler,))
    return server
