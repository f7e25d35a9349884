"""The embedded OTLP receiver: HTTP (4318) and gRPC (4317) into the span store.

A payload is read, decompressed, decoded and checked completely before
anything is stored, so a malformed or oversized export is refused whole and
the store keeps what it had. Refusals follow the OTLP spec: over HTTP every
4xx and 5xx carries a ``google.rpc.Status`` in the request's own encoding,
over gRPC the status code says whether retrying can help.
"""

from __future__ import annotations

import json
import zlib
from concurrent import futures

import grpc
from flask import Flask, Response, request
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from tracequest.backend.store import SpanStore
from tracequest.errors import TraceQuestError
from tracequest.traces.otlp import OTLPError, decode_json, decode_protobuf

MAX_BODY_BYTES = 16 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACES_PATH = "/v1/traces"
GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
GRPC_WORKERS = 8
# Exports beyond this many in flight are refused with RESOURCE_EXHAUSTED instead of queueing.
MAX_CONCURRENT_RPCS = 32

# google.rpc.Code for each HTTP status, as google.rpc.Code's own table pairs them.
_RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    431: code_pb2.RESOURCE_EXHAUSTED,
    500: code_pb2.INTERNAL,
    501: code_pb2.UNIMPLEMENTED,
    503: code_pb2.UNAVAILABLE,
}


class PayloadTooLarge(TraceQuestError, ValueError):
    """A body (as sent, or once decompressed) over the receiver's limit."""


# --- error bodies ------------------------------------------------------------

def encoding_of(content_type: str | None) -> str:
    """PROTOBUF or JSON; a request in neither encoding is answered in JSON."""
    mimetype = (content_type or "").split(";")[0].strip().lower()
    return PROTOBUF if mimetype == PROTOBUF else JSON


def status_body(http_status: int, message: str, content_type: str | None) -> tuple[bytes, str]:
    """The google.rpc.Status OTLP/HTTP asks for on every 4xx/5xx, and its media type."""
    code = _RPC_CODES.get(http_status, code_pb2.UNKNOWN)
    if encoding_of(content_type) == PROTOBUF:
        return Status(code=code, message=message).SerializeToString(), PROTOBUF
    return json.dumps({"code": code, "message": message, "details": []}).encode(), JSON


def too_large(what: str, limit: int) -> str:
    return f"{what} is over {limit} bytes ({limit / 2**20:g} MiB): export smaller batches"


def _error(http_status: int, message: str, content_type: str | None, headers=None) -> Response:
    body, mimetype = status_body(http_status, message, content_type)
    return Response(body, http_status, mimetype=mimetype, headers=headers)


class _StatusErrorTask(ErrorTask):
    """Waitress's own refusals (a body over the limit, a broken chunked upload) as a Status too."""

    def execute(self):
        error = self.request.error
        if error.code == 413:
            message = too_large("payload", self.channel.adj.max_request_body_size - 1)
        else:
            message = f"{error.reason}: {error.body}"
        body, mimetype = status_body(error.code, message, self.request.headers.get("CONTENT_TYPE"))
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", mimetype))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class StatusChannel(HTTPChannel):
    """Waitress connection class for the OTLP/HTTP server: its error replies carry a Status.

    Pair it with ``max_request_body_size=max_body_bytes + 1``: waitress then
    stops reading a chunked upload at one byte over the limit (chunk headers
    count) and answers 413 without calling the app, so nothing is stored.
    """

    error_task_class = _StatusErrorTask


# --- OTLP/HTTP ---------------------------------------------------------------

def create_otlp_http_app(store: SpanStore, max_body_bytes: int = MAX_BODY_BYTES) -> Flask:
    """OTLP/HTTP: POST /v1/traces with protobuf or JSON, optionally gzip'd."""
    app = Flask("tracequest.backend.receiver")

    def export_traces():
        encoding = (request.mimetype or "").lower()
        if encoding not in (PROTOBUF, JSON):
            sent = f"unsupported Content-Type {request.mimetype!r}" if request.mimetype else "no Content-Type"
            return _error(415, f"{sent}: send {PROTOBUF} or {JSON}", JSON)
        try:
            body = _read_body(max_body_bytes)
            body = _decompress(body, request.headers.get("Content-Encoding", ""), max_body_bytes)
            export = decode_protobuf(body) if encoding == PROTOBUF else decode_json(body)
        except PayloadTooLarge as exc:
            return _error(413, str(exc), encoding)
        except OTLPError as exc:
            return _error(400, str(exc), encoding)
        except RecursionError:
            # Deep nesting ends in RecursionError (json.loads, copying the document), not OTLPError.
            return _error(400, "body is nested too deeply to be an OTLP export", encoding)
        store.add(export)
        if encoding == PROTOBUF:
            return Response(ExportTraceServiceResponse().SerializeToString(), 200, mimetype=PROTOBUF)
        return Response("{}", 200, mimetype=JSON)

    # No automatic OPTIONS: anything but POST on /v1/traces is a 405.
    app.add_url_rule(TRACES_PATH, view_func=export_traces, methods=["POST"], provide_automatic_options=False)

    @app.errorhandler(404)
    def not_found(_):
        return _error(404, f"the OTLP receiver only serves POST {TRACES_PATH}", request.content_type)

    @app.errorhandler(405)
    def wrong_method(_):
        return _error(405, f"send traces with POST {TRACES_PATH}, not {request.method}",
                      request.content_type, headers={"Allow": "POST"})

    @app.errorhandler(500)
    def failed(_):
        return _error(500, "the receiver failed to store the export; see the backend's log", request.content_type)

    return app


def _read_body(limit: int) -> bytes:
    """At most ``limit`` bytes; an upload without Content-Length is read to limit + 1, never further."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(too_large("payload", limit))
    body = request.environ["wsgi.input"].read(limit + 1 if length is None else length)
    if len(body) > limit:
        raise PayloadTooLarge(too_large("payload", limit))
    return body


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise OTLPError(f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    try:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        # Inflate at most one byte past the limit, so a gzip bomb costs limit + 1 bytes.
        data = zlib.decompressobj(wbits).decompress(body, limit + 1)
    except zlib.error as exc:
        raise OTLPError(f"body is not valid {encoding} ({exc})") from None
    if len(data) > limit:
        raise PayloadTooLarge(too_large("decompressed payload", limit))
    return data


# --- OTLP/gRPC ---------------------------------------------------------------

def trace_service_handler(store: SpanStore) -> grpc.GenericRpcHandler:
    """TraceService/Export taking raw bytes, so an undecodable message is INVALID_ARGUMENT.

    With the generated servicer grpcio parses the message itself and answers a
    parse failure with INTERNAL, which tells the client the server is broken.
    """

    def export(body: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        try:
            request = decode_protobuf(body)
        except OTLPError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        store.add(request)
        return ExportTraceServiceResponse()

    return grpc.method_handlers_generic_handler(GRPC_SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(
            export, response_serializer=ExportTraceServiceResponse.SerializeToString),
    })


def start_grpc_receiver(store: SpanStore, host: str, port: int, max_body_bytes: int = MAX_BODY_BYTES,
                        workers: int = GRPC_WORKERS,
                        max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS) -> tuple[grpc.Server, int]:
    """Start the gRPC receiver; returns the server and the port it bound.

    ``workers`` threads run exports; past ``max_concurrent_rpcs`` in flight
    (running or queued) grpcio answers RESOURCE_EXHAUSTED at once.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        handlers=[trace_service_handler(store)],
        options=[("grpc.max_receive_message_length", max_body_bytes), ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0   # newer grpcio raises where older ones returned 0
    if bound == 0:
        raise OSError(f"could not bind the OTLP gRPC receiver to {host}:{port}")
    server.start()
    return server, bound
