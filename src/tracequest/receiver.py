"""The embedded OTLP receiver: HTTP (4318) and gRPC (4317) into the span store.

A payload is decoded and checked completely before anything is stored, so a
malformed or oversized export is refused whole and the store keeps what it had.
"""

from __future__ import annotations

import gzip
import json
import zlib
from concurrent import futures

import grpc
from flask import Flask, Response, request
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from .otlp import OTLPError, decode_json, decode_protobuf, validate
from .store import SpanStore

MAX_BODY_BYTES = 16 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def create_otlp_http_app(store: SpanStore, max_body_bytes: int = MAX_BODY_BYTES) -> Flask:
    """OTLP/HTTP: POST /v1/traces with protobuf or JSON, optionally gzip'd."""
    app = Flask("tracequest.receiver")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @app.post("/v1/traces")
    def export_traces():
        content_type = (request.mimetype or "").lower()
        if content_type not in (PROTOBUF, JSON):
            return _error(415, f"unsupported Content-Type {request.mimetype!r}: send {PROTOBUF} or {JSON}", JSON)
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _error(413, f"payload is over {max_body_bytes} bytes", content_type)
        try:
            body = _decompress(request.get_data(cache=False), request.headers.get("Content-Encoding", ""), max_body_bytes)
            export = decode_protobuf(body) if content_type == PROTOBUF else decode_json(body)
        except PayloadTooLarge as exc:
            return _error(413, str(exc), content_type)
        except OTLPError as exc:
            return _error(400, str(exc), content_type)
        store.add(export)
        if content_type == PROTOBUF:
            return Response(ExportTraceServiceResponse().SerializeToString(), 200, mimetype=PROTOBUF)
        return Response("{}", 200, mimetype=JSON)

    @app.errorhandler(413)
    def too_large(_):
        return _error(413, f"payload is over {max_body_bytes} bytes", JSON)

    @app.errorhandler(404)
    def not_found(_):
        return _error(404, "the OTLP receiver only serves POST /v1/traces", JSON)

    @app.errorhandler(405)
    def wrong_method(_):
        return _error(405, "send traces with POST /v1/traces", JSON)

    return app


class PayloadTooLarge(ValueError):
    pass


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise OTLPError(f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    try:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        data = inflater.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise OTLPError(f"body is not valid {encoding} ({exc})") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"decompressed payload is over {limit} bytes")
    return data


def _error(status: int, message: str, content_type: str) -> Response:
    # OTLP/HTTP answers in the request's encoding; a plain message for protobuf
    # clients keeps the reason readable in exporter logs.
    if content_type == JSON:
        return Response(json.dumps({"code": status, "message": message}), status, mimetype=JSON)
    return Response(message, status, mimetype="text/plain")


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC: the same decoding checks as HTTP, errors as INVALID_ARGUMENT."""

    def __init__(self, store: SpanStore):
        self.store = store

    def Export(self, request, context):
        try:
            validate(request)
        except OTLPError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self.store.add(request)
        return ExportTraceServiceResponse()


def start_grpc_receiver(store: SpanStore, host: str, port: int, max_body_bytes: int = MAX_BODY_BYTES) -> tuple[grpc.Server, int]:
    """Start the gRPC receiver; returns the server and the port it bound."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="otlp-grpc"),
        options=[("grpc.max_receive_message_length", max_body_bytes), ("grpc.so_reuseport", 0)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(store), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind the OTLP gRPC receiver to {host}:{port}")
    server.start()
    return server, bound
