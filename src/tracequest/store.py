"""Span storage for the embedded backend: SQLite, one row per span.

Each row keeps the span's own protobuf bytes (and its resource and scope), so
what comes out of the query API is exactly what went in; a few columns are
copied out of the span only to make searching fast.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from .otlp import SPAN_KINDS, attributes_to_dict

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id   TEXT NOT NULL,
    span_id    TEXT NOT NULL,
    service    TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       INTEGER NOT NULL,
    start_ns   INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    is_error   INTEGER NOT NULL,
    is_root    INTEGER NOT NULL,
    tags       TEXT NOT NULL,
    resource   BLOB NOT NULL,
    scope      BLOB NOT NULL,
    span       BLOB NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_service ON spans (service, start_ns);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ns);
"""


@dataclass
class TraceQuery:
    """A search, in the terms of Jaeger's API v3 (times in Unix ns)."""

    service: str | None
    start_min_ns: int
    start_max_ns: int
    operation: str | None = None
    duration_min_ns: int | None = None
    duration_max_ns: int | None = None
    attributes: dict = field(default_factory=dict)
    limit: int = 20


@dataclass
class TraceSummary:
    """One line of a trace list: what the embedded backend's home page shows."""

    trace_id: str
    service: str
    operation: str
    start_ns: int
    duration_ns: int
    span_count: int
    error_count: int


class SpanStore:
    """Thread-safe store; every export lands in one transaction or not at all."""

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ------------------------------------------------------------

    def add(self, request: ExportTraceServiceRequest) -> int:
        """Store every span of an export request; returns how many."""
        rows = []
        for rs in request.resource_spans:
            resource_blob = rs.resource.SerializeToString(deterministic=True)
            resource_attrs = attributes_to_dict(rs.resource.attributes)
            service = str(resource_attrs.get("service.name") or "unknown_service")
            for ss in rs.scope_spans:
                scope_blob = ss.scope.SerializeToString(deterministic=True)
                for span in ss.spans:
                    rows.append(_row(span, service, resource_attrs, resource_blob, scope_blob))
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    # --- reading ------------------------------------------------------------

    def _query(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def span_count(self) -> int:
        return self._query("SELECT COUNT(*) FROM spans")[0][0]

    def services(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT service FROM spans ORDER BY service")]

    def operations(self, service: str, kind: str | None = None) -> list[tuple[str, str]]:
        """(name, kind) pairs; kind is lowercase like Jaeger's ('server')."""
        rows = self._query(
            "SELECT DISTINCT name, kind FROM spans WHERE service = ? ORDER BY name, kind", (service,)
        )
        pairs = [(name, SPAN_KINDS.get(k, "UNSPECIFIED").lower()) for name, k in rows]
        if kind:
            pairs = [p for p in pairs if p[1] == kind.lower()]
        return pairs

    def find_trace_ids(self, query: TraceQuery) -> list[str]:
        """Newest first: traces holding one span that meets every condition."""
        sql = ["WHERE start_ns >= ? AND start_ns <= ?"]
        params: list = [query.start_min_ns, query.start_max_ns]
        if query.service:
            sql.append("AND service = ?")
            params.append(query.service)
        if query.operation:
            sql.append("AND name = ?")
            params.append(query.operation)
        if query.duration_min_ns is not None:
            sql.append("AND duration_ns >= ?")
            params.append(query.duration_min_ns)
        if query.duration_max_ns is not None:
            sql.append("AND duration_ns <= ?")
            params.append(query.duration_max_ns)
        where = " ".join(sql)
        if not query.attributes:
            rows = self._query(
                f"SELECT trace_id FROM spans {where} GROUP BY trace_id ORDER BY MAX(start_ns) DESC LIMIT ?",
                [*params, query.limit],
            )
            return [r[0] for r in rows]
        # Attribute matches are checked here, on the candidate spans' tags.
        found: list[str] = []
        rows = self._query(f"SELECT trace_id, tags FROM spans {where} ORDER BY start_ns DESC", params)
        for trace_id, tags in rows:
            if trace_id in found or not _tags_match(json.loads(tags), query.attributes):
                continue
            found.append(trace_id)
            if len(found) >= query.limit:
                break
        return found

    def get_traces(self, trace_ids: list[str]) -> ExportTraceServiceRequest:
        """The spans of these traces as one OTLP export request."""
        request = ExportTraceServiceRequest()
        if not trace_ids:
            return request
        marks = ",".join("?" * len(trace_ids))
        rows = self._query(
            f"SELECT resource, scope, span FROM spans WHERE trace_id IN ({marks}) ORDER BY start_ns",
            trace_ids,
        )
        groups: dict[bytes, dict[bytes, ScopeSpans]] = {}
        resources: dict[bytes, ResourceSpans] = {}
        for resource_blob, scope_blob, span_blob in rows:
            if resource_blob not in resources:
                rs = request.resource_spans.add()
                rs.resource.CopyFrom(Resource.FromString(resource_blob))
                resources[resource_blob] = rs
                groups[resource_blob] = {}
            scopes = groups[resource_blob]
            if scope_blob not in scopes:
                ss = resources[resource_blob].scope_spans.add()
                ss.scope.CopyFrom(InstrumentationScope.FromString(scope_blob))
                scopes[scope_blob] = ss
            scopes[scope_blob].spans.append(ProtoSpan.FromString(span_blob))
        return request

    def recent_traces(self, limit: int = 50) -> list[TraceSummary]:
        """Newest traces with their root (or earliest) span, for trace lists."""
        # One query: per trace, its totals and the span that heads it (root first).
        rows = self._query(
            """
            SELECT trace_id, service, name, first, last, count, errors FROM (
                SELECT trace_id, service, name,
                       MIN(start_ns) OVER t AS first, MAX(start_ns + duration_ns) OVER t AS last,
                       COUNT(*) OVER t AS count, SUM(is_error) OVER t AS errors,
                       ROW_NUMBER() OVER (PARTITION BY trace_id ORDER BY is_root DESC, start_ns) AS head
                FROM spans WINDOW t AS (PARTITION BY trace_id))
            WHERE head = 1 ORDER BY first DESC LIMIT ?
            """,
            (limit,),
        )
        return [TraceSummary(trace_id, service, name, first, last - first, count, errors)
                for trace_id, service, name, first, last, count, errors in rows]


def _row(span: ProtoSpan, service: str, resource_attrs: dict, resource_blob: bytes, scope_blob: bytes) -> tuple:
    tags = {**resource_attrs, **attributes_to_dict(span.attributes)}
    return (
        span.trace_id.hex(),
        span.span_id.hex(),
        service,
        span.name,
        span.kind,
        span.start_time_unix_nano,
        max(0, span.end_time_unix_nano - span.start_time_unix_nano),
        1 if span.status.code == 2 else 0,
        0 if span.parent_span_id else 1,
        json.dumps(tags, default=str),
        resource_blob,
        scope_blob,
        span.SerializeToString(deterministic=True),
    )


def _tags_match(tags: dict, wanted: dict) -> bool:
    """Every wanted key present with the same value, compared as text like Jaeger."""
    for key, value in wanted.items():
        if key not in tags or _as_text(tags[key]) != _as_text(value):
            return False
    return True


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
