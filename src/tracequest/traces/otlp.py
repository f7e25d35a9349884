"""OTLP in and out: the one place where wire formats meet the trace model.

Every source of spans (the embedded receiver, Jaeger's API v3, a test's
hand-built payload) arrives as OTLP, either protobuf or JSON. Both are decoded
into the same protobuf message, so a single function turns spans into the
trace model and a single function writes OTLP JSON back out.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracequest.errors import TraceQuestError
from tracequest.traces.model import Event, Link, Span

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}


class OTLPError(TraceQuestError, ValueError):
    """A payload that is not valid OTLP; the message says what is wrong."""


# --- decoding -------------------------------------------------------------

def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse an OTLP/protobuf export request and check its ids."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OTLPError(f"body is not an OTLP protobuf ExportTraceServiceRequest ({exc})") from None
    validate(request)
    return request


def decode_json(body: bytes | str | dict) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON, where ids are hex strings, into the protobuf message."""
    if isinstance(body, dict):
        document = body
    else:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise OTLPError(f"body is not valid JSON ({exc})") from None
        except RecursionError:
            raise OTLPError("body is not OTLP/JSON: it is nested too deeply") from None
    if not isinstance(document, dict):
        raise OTLPError("OTLP/JSON must be an object with a 'resourceSpans' list")
    request = ExportTraceServiceRequest()
    try:
        document = _hex_ids_to_base64(copy.deepcopy(document))
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise OTLPError(f"body is not OTLP/JSON ({exc})") from None
    except RecursionError:
        raise OTLPError("body is not OTLP/JSON: it is nested too deeply") from None
    validate(request)
    return request


def validate(request: ExportTraceServiceRequest) -> None:
    """Reject spans whose ids could never be stored or linked."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                where = f"span {span.name!r}"
                if len(span.trace_id) != 16 or not any(span.trace_id):
                    raise OTLPError(f"{where} has an invalid trace id (need 16 non-zero bytes)")
                if len(span.span_id) != 8 or not any(span.span_id):
                    raise OTLPError(f"{where} has an invalid span id (need 8 non-zero bytes)")
                if span.parent_span_id and len(span.parent_span_id) != 8:
                    raise OTLPError(f"{where} has an invalid parent span id (need 8 bytes)")


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(document: dict) -> dict:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64."""
    try:
        resource_spans = document.get("resourceSpans", document.get("resource_spans", []))
        for rs in resource_spans:
            for ss in rs.get("scopeSpans", rs.get("scope_spans", [])):
                for span in ss.get("spans", []):
                    _convert_ids(span)
                    for link in span.get("links", []):
                        _convert_ids(link)
    except (AttributeError, TypeError):
        raise OTLPError("OTLP/JSON structure is wrong: expected resourceSpans[].scopeSpans[].spans[]") from None
    return document


def _convert_ids(obj: dict) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if not value:
            continue
        if not isinstance(value, str):
            raise OTLPError(f"{key} must be a hex string, got {value!r}")
        try:
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            raise OTLPError(f"{key} {value!r} is not hex") from None


# --- encoding -------------------------------------------------------------

# protobuf's JSON mapping, with hex ids and enums as integers (a test holds the two
# equal), written field by field: json_format walks descriptors in Python and takes
# ~80 µs a span, too slow for a search of 20 traces.

def encode_json(request: ExportTraceServiceRequest) -> dict:
    """OTLP/JSON as Jaeger's API v3 writes it: hex ids, enums as integers."""
    return {"resourceSpans": [_resource_spans(rs) for rs in request.resource_spans]} if request.resource_spans else {}


_SHARED: dict[bytes, dict] = {}   # resources and scopes repeat in every trace: converted once


def _shared(message) -> dict:
    key = message.DESCRIPTOR.full_name.encode() + message.SerializeToString(deterministic=True)
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) > 1000:
            _SHARED.clear()
        found = _SHARED[key] = json_format.MessageToDict(message)
    return found


def _resource_spans(rs) -> dict:
    out = {}
    if rs.HasField("resource"):
        out["resource"] = _shared(rs.resource)
    if rs.scope_spans:
        out["scopeSpans"] = [_scope_spans(ss) for ss in rs.scope_spans]
    if rs.schema_url:
        out["schemaUrl"] = rs.schema_url
    return out


def _scope_spans(ss) -> dict:
    out = {}
    if ss.HasField("scope"):
        out["scope"] = _shared(ss.scope)
    if ss.spans:
        out["spans"] = [_span(s) for s in ss.spans]
    if ss.schema_url:
        out["schemaUrl"] = ss.schema_url
    return out


def _span(s) -> dict:
    out = {"traceId": s.trace_id.hex(), "spanId": s.span_id.hex()}
    if s.trace_state:
        out["traceState"] = s.trace_state
    if s.parent_span_id:
        out["parentSpanId"] = s.parent_span_id.hex()
    if s.flags:
        out["flags"] = s.flags
    if s.name:
        out["name"] = s.name
    if s.kind:
        out["kind"] = s.kind
    if s.start_time_unix_nano:
        out["startTimeUnixNano"] = str(s.start_time_unix_nano)
    if s.end_time_unix_nano:
        out["endTimeUnixNano"] = str(s.end_time_unix_nano)
    if s.attributes:
        out["attributes"] = _attributes(s.attributes)
    if s.dropped_attributes_count:
        out["droppedAttributesCount"] = s.dropped_attributes_count
    if s.events:
        out["events"] = [_event(e) for e in s.events]
    if s.dropped_events_count:
        out["droppedEventsCount"] = s.dropped_events_count
    if s.links:
        out["links"] = [_link(link) for link in s.links]
    if s.dropped_links_count:
        out["droppedLinksCount"] = s.dropped_links_count
    if s.HasField("status"):
        status = {}
        if s.status.message:
            status["message"] = s.status.message
        if s.status.code:
            status["code"] = s.status.code
        out["status"] = status
    return out


def _event(e) -> dict:
    out = {}
    if e.time_unix_nano:
        out["timeUnixNano"] = str(e.time_unix_nano)
    if e.name:
        out["name"] = e.name
    if e.attributes:
        out["attributes"] = _attributes(e.attributes)
    if e.dropped_attributes_count:
        out["droppedAttributesCount"] = e.dropped_attributes_count
    return out


def _link(link) -> dict:
    out = {}
    if link.trace_id:
        out["traceId"] = link.trace_id.hex()
    if link.span_id:
        out["spanId"] = link.span_id.hex()
    if link.trace_state:
        out["traceState"] = link.trace_state
    if link.attributes:
        out["attributes"] = _attributes(link.attributes)
    if link.dropped_attributes_count:
        out["droppedAttributesCount"] = link.dropped_attributes_count
    if link.flags:
        out["flags"] = link.flags
    return out


def _attributes(key_values) -> list[dict]:
    return [{"key": kv.key, "value": _any(kv.value)} if kv.key else {"value": _any(kv.value)}
            for kv in key_values]


def _any(value) -> dict:
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "double_value" and math.isfinite(value.double_value):
        return {"doubleValue": value.double_value}
    if which == "array_value":
        values = value.array_value.values
        return {"arrayValue": {"values": [_any(v) for v in values]} if values else {}}
    if which == "kvlist_value":
        values = value.kvlist_value.values
        return {"kvlistValue": {"values": _attributes(values)} if values else {}}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode()}
    return json_format.MessageToDict(value)   # unset, or NaN/Infinity: as protobuf writes them


# --- into the trace model -------------------------------------------------

def spans_from_request(request: ExportTraceServiceRequest) -> list[Span]:
    """The one conversion from OTLP to the trace model."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        service = str(resource.get("service.name") or "unknown_service")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                spans.append(_span_from_proto(span, service, resource, scope))
    return spans


def _span_from_proto(span, service: str, resource: dict, scope: str) -> Span:
    return Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() or None,
        name=span.name,
        service=service,
        kind=SPAN_KINDS.get(span.kind, "UNSPECIFIED"),
        start_ns=span.start_time_unix_nano,
        end_ns=max(span.end_time_unix_nano, span.start_time_unix_nano),
        status=STATUS_CODES.get(span.status.code, "UNSET"),
        status_message=span.status.message,
        attributes=attributes_to_dict(span.attributes),
        events=[
            Event(e.name, e.time_unix_nano, attributes_to_dict(e.attributes))
            for e in span.events
        ],
        links=[
            Link(link.trace_id.hex(), link.span_id.hex(), attributes_to_dict(link.attributes))
            for link in span.links
        ],
        resource=resource,
        scope=scope,
    )


def attributes_to_dict(key_values) -> dict:
    return {kv.key: any_value(kv.value) for kv in key_values}


def any_value(value: AnyValue):
    """Unwrap an OTLP AnyValue into a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    if which == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode()
    return getattr(value, which)


def parse_otlp(body: bytes | str | dict, content_type: str = "application/json") -> list[Span]:
    """Decode a payload of either encoding straight into model spans."""
    if "protobuf" in content_type:
        return spans_from_request(decode_protobuf(body))
    return spans_from_request(decode_json(body))
