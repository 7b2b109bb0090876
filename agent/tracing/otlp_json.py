"""OTLP/JSON bodies: the protobuf JSON mapping, except that trace and span ids are
hex strings rather than base64 (OTLP specification, "JSON Protobuf Encoding")."""

from __future__ import annotations

import base64
import binascii
import json

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent.tracing.spans import PayloadError

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(obj: object) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    obj[k] = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError:
                    raise PayloadError("malformed", f"{k} {v!r} is not hex") from None
            else:
                _hex_ids_to_base64(v)
    elif isinstance(obj, list):
        for v in obj:
            _hex_ids_to_base64(v)


def decode_export_json(body: bytes) -> ExportTraceServiceRequest:
    """Decode; raises PayloadError("malformed") for anything that is not an export
    request, nesting deep enough to exhaust the recursive decoders included."""
    try:
        return _decode(body)
    except RecursionError:
        raise PayloadError("malformed", "JSON nested too deeply") from None


def _decode(body: bytes) -> ExportTraceServiceRequest:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError("malformed", f"not JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise PayloadError("malformed", "an OTLP/JSON export request is an object")
    _hex_ids_to_base64(data)
    req = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, req, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError, ValueError) as e:
        raise PayloadError("malformed", f"not an OTLP ExportTraceServiceRequest: {str(e)[:200]}") from None
    return req
