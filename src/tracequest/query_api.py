"""Jaeger's query API v3, served by the embedded backend on port 16686.

The lab's query client speaks only this API, so notebooks, checks and the CLI
work the same against the embedded backend and a real Jaeger. Parameter
handling and error bodies follow Jaeger's HTTP gateway, including its quirks:
a search with no match answers 404, and missing times answer 400.
"""

from __future__ import annotations

import json
import re

from flask import Flask, Response, request

from . import pages
from .otlp import encode_json
from .store import SpanStore, TraceQuery
from .timefmt import parse_go_duration, parse_rfc3339

DEFAULT_SEARCH_DEPTH = 20
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")

# Each search parameter with the spellings Jaeger accepts for it.
# A search without a service searches all services, as Jaeger's does.
_PARAMS = {
    "service": ("query.service_name", "query.serviceName"),
    "operation": ("query.operation_name", "query.operationName"),
    "start_min": ("query.start_time_min", "query.startTimeMin"),
    "start_max": ("query.start_time_max", "query.startTimeMax"),
    "duration_min": ("query.duration_min", "query.durationMin"),
    "duration_max": ("query.duration_max", "query.durationMax"),
    "depth": ("query.search_depth", "query.searchDepth", "query.num_traces", "query.numTraces"),
    "attributes": ("query.attributes",),
    "raw": ("query.raw_traces", "query.rawTraces"),
}


class ParamError(ValueError):
    """A bad query parameter; answered as 400 in Jaeger's error shape."""


def create_query_app(store: SpanStore) -> Flask:
    app = Flask("tracequest.query")

    @app.get("/api/v3/services")
    def services():
        return _json({"services": store.services()})

    @app.get("/api/v3/operations")
    def operations():
        service = request.args.get("service", "")
        kind = request.args.get("span_kind") or request.args.get("spanKind") or None
        ops = [{"name": n, "spanKind": k} for n, k in store.operations(service, kind)]
        return _json({"operations": ops})

    @app.get("/api/v3/traces")
    def find_traces():
        try:
            query = parse_find_query(request.args)
        except ParamError as exc:
            return _error(400, str(exc))
        return _traces(store, store.find_trace_ids(query))

    @app.get("/api/v3/traces/<trace_id>")
    def get_trace(trace_id: str):
        if not _TRACE_ID.match(trace_id):
            return _error(400, f"malformed parameter trace_id: {trace_id!r} is not a hex trace id")
        for name in ("start_time", "end_time"):
            if request.args.get(name):
                try:
                    parse_rfc3339(request.args[name])
                except ValueError as exc:
                    return _error(400, f"malformed parameter {name}: {exc}")
        return _traces(store, [trace_id.lower().rjust(32, "0")])

    pages.register(app, store)
    return app


def _arg(args, key: str) -> str:
    return _named_arg(args, key)[1]


def _named_arg(args, key: str) -> tuple[str, str]:
    """(the spelling the caller used, its value), so errors name what was sent."""
    for name in _PARAMS[key]:
        if args.get(name):
            return name, args[name]
    return _PARAMS[key][0], ""


def parse_find_query(args) -> TraceQuery:
    """Turn search parameters into a TraceQuery, or raise ParamError like Jaeger."""
    start_min, start_max = _arg(args, "start_min"), _arg(args, "start_max")
    if not start_min or not start_max:
        raise ParamError("query.start_time_min and query.start_time_max are required")
    query = TraceQuery(
        service=_arg(args, "service") or None,
        start_min_ns=_parse(parse_rfc3339, start_min, "query.start_time_min"),
        start_max_ns=_parse(parse_rfc3339, start_max, "query.start_time_max"),
        operation=_arg(args, "operation") or None,
        limit=DEFAULT_SEARCH_DEPTH,
    )
    name, depth = _named_arg(args, "depth")
    if depth:
        if not re.fullmatch(r"-?\d+", depth):
            raise ParamError(f"malformed parameter {name}: {depth!r} is not an integer")
        if int(depth) < 1:
            raise ParamError(f"{name} must be greater than 0")
        query.limit = int(depth)
    if value := _arg(args, "duration_min"):
        query.duration_min_ns = _parse(parse_go_duration, value, "query.duration_min")
    if value := _arg(args, "duration_max"):
        query.duration_max_ns = _parse(parse_go_duration, value, "query.duration_max")
    if value := _arg(args, "attributes"):
        query.attributes = _parse(_attributes, value, "query.attributes")
    if value := _arg(args, "raw"):
        if value.lower() not in ("true", "false", "1", "0", "t", "f"):
            raise ParamError(f"malformed parameter query.raw_traces: {value!r} is not a boolean")
    return query


def _attributes(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object of attribute names to values")
    return value


def _parse(parser, value: str, name: str):
    try:
        return parser(value)
    except ValueError as exc:
        raise ParamError(f"malformed parameter {name}: {exc}") from None


def _traces(store: SpanStore, trace_ids: list[str]) -> Response:
    export = store.get_traces(trace_ids)
    if not export.resource_spans:
        return _error(404, "No traces found")
    return _json({"result": encode_json(export)})


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status, mimetype="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": {"httpCode": status, "message": message}}, status)
