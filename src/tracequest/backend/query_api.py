"""Jaeger's query API v3, served by the embedded backend on port 16686.

The lab's query client speaks only this API, so notebooks, checks and the CLI
work the same against the embedded backend and a real Jaeger (2.13). Answers
follow Jaeger's HTTP gateway: the same parameter names, error shape, 404 for a
search with no match, newest trace first, operations without a name or kind
shaped as Jaeger shapes them, ``status`` on every span.

Where Jaeger would refuse a request with a 500 or silently ignore a parameter
(camelCase names, ``spanKind``, upper-case kinds, ``query.attributes``: it
returns unfiltered results), this backend answers 400 and names the spelling
Jaeger honours, so a script written against the lab keeps working against
Jaeger.
"""

from __future__ import annotations

import difflib
import json
import re

from flask import Flask, Response, request

from tracequest.backend import pages
from tracequest.backend.store import KIND_NAMES, SpanStore, TraceQuery
from tracequest.errors import TraceQuestError
from tracequest.traces.otlp import encode_json
from tracequest.traces.timefmt import parse_go_duration, parse_rfc3339

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")
_BOOLEAN = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")  # Go's ParseBool

# The parameters Jaeger 2.13's HTTP gateway reads, per endpoint; it ignores every other.
FIND_PARAMS = ("query.service_name", "query.operation_name", "query.start_time_min", "query.start_time_max",
               "query.num_traces", "query.duration_min", "query.duration_max", "query.raw_traces")
GET_TRACE_PARAMS = ("start_time", "end_time", "raw_traces")
OPERATIONS_PARAMS = ("service", "span_kind")
SPAN_KINDS = tuple(k for k in KIND_NAMES.values() if k)   # what span_kind can match: lower case

# Names people reach for that Jaeger ignores, and the one it reads instead.
_INSTEAD = {"query.search_depth": "query.num_traces", "query.limit": "query.num_traces",
            "query.service": "query.service_name", "query.operation": "query.operation_name",
            "kind": "span_kind", "service_name": "service", "start": "start_time", "end": "end_time"}


class ParamError(TraceQuestError, ValueError):
    """A bad query parameter; answered as 400 in Jaeger's error shape."""


def create_query_app(store: SpanStore) -> Flask:
    app = Flask("tracequest.query")

    @app.errorhandler(ParamError)
    def bad_parameter(exc: ParamError):
        return _error(400, str(exc))

    @app.get("/api/v3/services")
    def services():
        _check_names(request.args, ())
        found = store.services()
        return _json({"services": found} if found else {})   # Jaeger leaves out an empty list

    @app.get("/api/v3/operations")
    def operations():
        _check_names(request.args, OPERATIONS_PARAMS)
        kind = request.args.get("span_kind", "")
        if kind and kind not in SPAN_KINDS:
            raise ParamError(f"span_kind {kind!r} matches nothing in Jaeger 2.13, which compares it exactly; "
                             f"use one of {', '.join(SPAN_KINDS)} (lower case)")
        ops = [_operation(name, k) for name, k in store.operations(request.args.get("service", ""), kind or None)]
        return _json({"operations": ops})

    @app.get("/api/v3/traces")
    def find_traces():
        query, raw = parse_find_query(request.args)
        return _traces(store, store.find_trace_ids(query), raw)

    @app.get("/api/v3/traces/<trace_id>")
    def get_trace(trace_id: str):
        _check_names(request.args, GET_TRACE_PARAMS)
        if not _TRACE_ID.match(trace_id):
            raise ParamError(f"malformed parameter trace_id: {trace_id!r} is not a hex trace id")
        for name in ("start_time", "end_time"):
            if request.args.get(name):
                _parse(parse_rfc3339, request.args[name], name)
        return _traces(store, [trace_id.lower().rjust(32, "0")], _boolean(request.args, "raw_traces"))

    pages.register(app, store)
    return app


def parse_find_query(args) -> tuple[TraceQuery, bool]:
    """(the search, whether raw traces were asked for), or ParamError where Jaeger refuses or ignores."""
    _check_names(args, FIND_PARAMS)
    start_min, start_max = args.get("query.start_time_min", ""), args.get("query.start_time_max", "")
    if not start_min or not start_max:
        raise ParamError("query.start_time_min and query.start_time_max are required")
    query = TraceQuery(
        service=args.get("query.service_name") or None,
        start_min_ns=_parse(parse_rfc3339, start_min, "query.start_time_min"),
        start_max_ns=_parse(parse_rfc3339, start_max, "query.start_time_max"),
        operation=args.get("query.operation_name") or None,
    )
    depth = args.get("query.num_traces", "")
    if depth:
        if not re.fullmatch(r"[+-]?\d+", depth):
            raise ParamError(f"malformed parameter query.num_traces: {depth!r} is not an integer")
        query.limit = int(depth)
    if value := args.get("query.duration_min"):
        query.duration_min_ns = _parse(parse_go_duration, value, "query.duration_min")
    if value := args.get("query.duration_max"):
        query.duration_max_ns = _parse(parse_go_duration, value, "query.duration_max")
    raw = _boolean(args, "query.raw_traces")
    if not depth:
        raise ParamError("query.num_traces is required: Jaeger 2.13 answers 500 without it "
                         "(\"search depth must be greater than 0\"); add e.g. query.num_traces=20")
    if query.limit < 1:
        raise ParamError(f"query.num_traces must be greater than 0 (Jaeger 2.13 answers 500 for {depth})")
    return query, raw


def _check_names(args, accepted: tuple[str, ...]) -> None:
    """Refuse a parameter Jaeger would ignore, naming the one it reads."""
    for name in args:
        if name in accepted:
            continue
        if name == "query.attributes":
            raise ParamError(
                "query.attributes is not supported: Jaeger 2.13's HTTP API ignores it and returns "
                "unfiltered traces. Search by service, operation and duration, then filter the traces "
                "on their attributes (QueryClient.find_traces(attributes=...) does that for you)")
        instead = _instead(name, accepted)
        hint = f"; use {instead}" if instead else (f"; it reads only {', '.join(accepted)}" if accepted else "")
        raise ParamError(f"unknown parameter {name}: Jaeger 2.13 ignores it and answers as if it "
                         f"were not there{hint}")


def _instead(name: str, accepted: tuple[str, ...]) -> str | None:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    for candidate in (name, snake):
        if candidate in accepted:
            return candidate
        if _INSTEAD.get(candidate) in accepted:
            return _INSTEAD[candidate]
    close = difflib.get_close_matches(snake, accepted, n=1, cutoff=0.6)
    return close[0] if close else None


def _boolean(args, name: str) -> bool:
    value = args.get(name, "")
    if value and value not in _BOOLEAN:
        raise ParamError(f"malformed parameter {name}: {value!r} is not a boolean (true or false)")
    return value.lower() in ("1", "t", "true")


def _parse(parser, value: str, name: str):
    try:
        return parser(value)
    except ValueError as exc:
        raise ParamError(f"malformed parameter {name}: {exc}") from None


def _operation(name: str, kind: str) -> dict:
    """As Jaeger writes it: an empty name or kind is left out, not written as ''."""
    shaped = {}
    if name:
        shaped["name"] = name
    if kind:
        shaped["spanKind"] = kind
    return shaped


def _traces(store: SpanStore, trace_ids: list[str], raw: bool = False) -> Response:
    export = store.export(trace_ids, raw=raw)
    if not export.resource_spans:
        return _error(404, "No traces found")
    return _json({"result": encode_json(export)})


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":"), check_circular=False), status,
                    mimetype="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": {"httpCode": status, "message": message}}, status)
