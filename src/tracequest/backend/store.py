"""Span storage for the embedded backend: SQLite, one row per span, one per trace.

Each span row keeps the span's own protobuf bytes (its resource and scope are
stored once and referenced), so what comes out of the query API is exactly
what went in. A few columns are copied out of the span only to search fast,
and a per-trace summary row, kept up to date as spans arrive, answers trace
lists and orders searches without reading spans.

Traces are numbered in the order they first arrive (``traces.seq``), as real
Jaeger's in-memory store keeps them in a ring: "newest first" means most
recently arrived first, and retention drops the lowest numbers, whole traces
at a time.

The module stays whole although it is longer than the others: the schema and
every statement that writes or reads it (ingest, retention, search, export)
change together, and a reader checking one query needs the schema beside it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.common.knobs import knob
from tracequest.traces.model import Trace
from tracequest.traces.otlp import spans_from_request

log = logging.getLogger(__name__)

#: Span count the backend keeps when no limit is given: ~20,000 demo traces,
#: about 350 MB on disk. Oldest whole traces go first beyond it.
DEFAULT_MAX_SPANS = knob("max-spans").default
#: Age (since a trace's first span arrived) after which the backend drops it.
DEFAULT_MAX_AGE_S = knob("max-age").default
#: When over the span limit, eviction goes this fraction below it, so that it
#: runs once per 1% of growth rather than after every export.
EVICTION_HEADROOM = 0.01
#: How often (seconds, at most) an add() looks for traces past their age.
AGE_CHECK_INTERVAL_S = 5.0
#: A search over at most this many operations runs one indexed walk per operation.
PER_OPERATION_SEARCHES = 32

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (      -- resources and scopes, each stored once
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS traces (     -- one summary row per trace, updated as spans arrive
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order of its first span; never reused
    trace_id     BLOB NOT NULL UNIQUE,
    first_seen   REAL NOT NULL,         -- Unix seconds when it arrived (for max age)
    start_ns     INTEGER NOT NULL,
    end_ns       INTEGER NOT NULL,
    span_count   INTEGER NOT NULL,
    error_count  INTEGER NOT NULL,
    head_is_root INTEGER NOT NULL,      -- the span that heads the trace in lists:
    head_start   INTEGER NOT NULL,      -- its root, or its earliest span until the root arrives
    head_service TEXT NOT NULL,
    head_name    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (  -- what /api/v3/services and /operations list
    id       INTEGER PRIMARY KEY,
    service  TEXT NOT NULL,
    name     TEXT NOT NULL,
    kind     INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,          -- newest trace using it: it goes when that trace goes
    min_duration INTEGER NOT NULL,      -- bounds over every span it has had, so a search
    max_duration INTEGER NOT NULL,      -- skips operations that cannot match
    min_start    INTEGER NOT NULL,
    max_start    INTEGER NOT NULL,
    UNIQUE (service, name, kind)
);
CREATE TABLE IF NOT EXISTS spans (      -- no unique key: two spans with one id are both kept
    trace_seq   INTEGER NOT NULL,
    op_id       INTEGER NOT NULL,       -- its service, name and kind
    start_ns    INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    resource_id INTEGER NOT NULL,
    scope_id    INTEGER NOT NULL,
    span        BLOB NOT NULL
);
-- Searches walk an index newest trace first and stop after enough traces; the time and
-- duration ride along so that a search never reads the span rows themselves.
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_seq, op_id, start_ns, duration_ns);
CREATE INDEX IF NOT EXISTS spans_by_operation ON spans (op_id, trace_seq, start_ns, duration_ns);
"""

#: OTLP span kinds as Jaeger's API v3 names them; unspecified has no name.
KIND_NAMES = {0: "", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
UNKNOWN_SERVICE = "unknown_service"


@dataclass
class TraceQuery:
    """A search, in the terms of Jaeger's API v3 (times in Unix ns)."""

    service: str | None
    start_min_ns: int
    start_max_ns: int
    operation: str | None = None
    duration_min_ns: int | None = None
    duration_max_ns: int | None = None
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
    """Thread-safe store; every export lands in one transaction or not at all.

    ``max_spans`` and ``max_age_s`` bound it (None: the defaults above; 0: no
    bound). Reads of a file store use a connection per thread, so searches do
    not wait behind ingest.
    """

    def __init__(self, path: str | Path = ":memory:", max_spans: int | None = None,
                 max_age_s: float | None = None):
        self.path = str(path)
        self.max_spans = DEFAULT_MAX_SPANS if max_spans is None else int(max_spans)
        self.max_age_s = DEFAULT_MAX_AGE_S if max_age_s is None else float(max_age_s)
        if self.max_spans < 0 or self.max_age_s < 0:
            raise ValueError("max_spans and max_age_s must be 0 (no limit) or more")
        self._memory = self.path == ":memory:"
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._set_aside_old_file()
        self._db = self._connect()
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._blob_ids: dict[bytes, int] = {}
        self._blobs: dict[int, bytes] = {}
        self._next_age_check = 0.0
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._span_total = self._db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
        self.enforce_retention()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)

    def _set_aside_old_file(self) -> None:
        """A spans.db from an older Trace Quest is kept, renamed, and a new one is started."""
        path = Path(self.path)
        if self._memory or not path.exists():
            return
        with closing(sqlite3.connect(self.path)) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            old = db.execute("SELECT 1 FROM sqlite_master WHERE name='spans'").fetchone()
        if not old or version == SCHEMA_VERSION:
            return
        kept = path.with_name(f"{path.stem}.format{version}{path.suffix}")
        for suffix in ("", "-wal", "-shm"):
            leftover = Path(self.path + suffix)
            if leftover.exists():
                leftover.replace(str(kept) + suffix)
        log.warning("%s was written by an older Trace Quest; kept it as %s and started a new store",
                    self.path, kept)

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._db.close()

    # --- writing ------------------------------------------------------------

    def add(self, request: ExportTraceServiceRequest) -> int:
        """Store every span of an export request; returns how many."""
        batch = _Batch(request)
        if not batch.rows:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                seqs = self._trace_seqs(batch.traces, batch.now)
                newest = max(seqs.values())
                ops = {op: self._upsert_operation(op, bounds, newest) for op, bounds in batch.operations.items()}
                blobs = {blob: self._blob_id(blob) for blob in batch.blobs}
                db.executemany("INSERT INTO spans VALUES (?,?,?,?,?,?,?)",
                               [(seqs[tid], ops[op], start, duration, blobs[resource], blobs[scope], data)
                                for tid, op, start, duration, resource, scope, data in batch.rows])
                total = self._span_total + len(batch.rows)
                # In the same transaction, so no reader ever sees the store over its bound.
                if (self.max_spans and total > self.max_spans) or (self.max_age_s and batch.now >= self._next_age_check):
                    total -= self._evict(batch.now, total)[1]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._blob_ids.clear()   # ids handed out in the rolled-back transaction are void
                raise
            self._span_total = total
        return len(batch.rows)

    def _trace_seqs(self, traces: dict[bytes, list], now: float) -> dict[bytes, int]:
        """Each trace's sequence number: new traces numbered in arrival order, known ones widened.

        A few statements per export whatever its number of traces: one upsert per
        trace cost as much as storing all the spans.
        """
        db, ids = self._db, list(traces)
        seqs: dict[bytes, int] = {}
        for i in range(0, len(ids), 500):   # SQLite caps the ? marks of one statement
            chunk = ids[i:i + 500]
            seqs.update(db.execute(f"SELECT trace_id, seq FROM traces WHERE trace_id IN "
                                   f"({','.join('?' * len(chunk))})", chunk))
        known = [(*traces[tid], seqs[tid]) for tid in ids if tid in seqs]
        new = [tid for tid in ids if tid not in seqs]
        if new:
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'traces'").fetchone()
            first = (last[0] if last else 0) + 1
            seqs.update((tid, first + i) for i, tid in enumerate(new))
            db.executemany("INSERT INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(seqs[tid], tid, now, *traces[tid]) for tid in new])
        if known:
            # Every right-hand side reads the row as it was, so the head test sees old values.
            newer_head = "(:root > head_is_root OR (:root = head_is_root AND :head_start < head_start))"
            db.executemany(
                f"""
                UPDATE traces SET
                    start_ns = min(start_ns, :start), end_ns = max(end_ns, :end),
                    span_count = span_count + :count, error_count = error_count + :errors,
                    head_service = iif({newer_head}, :service, head_service),
                    head_name = iif({newer_head}, :name, head_name),
                    head_start = iif({newer_head}, :head_start, head_start),
                    head_is_root = max(head_is_root, :root)
                WHERE seq = :seq
                """,
                [dict(zip(("start", "end", "count", "errors", "root", "head_start", "service", "name",
                           "seq"), row)) for row in known])
        return seqs

    def _upsert_operation(self, op: tuple[str, str, int], bounds: list[int], seq: int) -> int:
        """The operation's id, created if new; it now lives at least as long as trace ``seq``."""
        return self._db.execute(
            """
            INSERT INTO operations VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET
                last_seq = max(last_seq, excluded.last_seq),
                min_duration = min(min_duration, excluded.min_duration),
                max_duration = max(max_duration, excluded.max_duration),
                min_start = min(min_start, excluded.min_start), max_start = max(max_start, excluded.max_start)
            RETURNING id
            """, (*op, seq, *bounds)).fetchone()[0]

    def _blob_id(self, blob: bytes) -> int:
        found = self._blob_ids.get(blob)
        if found is None:
            self._db.execute("INSERT OR IGNORE INTO blobs (data) VALUES (?)", (blob,))
            found = self._db.execute("SELECT id FROM blobs WHERE data = ?", (blob,)).fetchone()[0]
            if len(self._blob_ids) > 10_000:   # a flood of distinct resources must not grow memory
                self._blob_ids.clear()
            self._blob_ids[blob] = found
        return found

    # --- retention ----------------------------------------------------------

    def enforce_retention(self) -> int:
        """Drop the oldest whole traces beyond max_spans or past max_age_s; returns how many traces."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                traces, spans = self._evict(time.time(), self._span_total)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._span_total -= spans
            return traces

    def _evict(self, now: float, total: int) -> tuple[int, int]:
        """Delete the oldest traces that must go; (traces, spans) deleted. Runs in the caller's transaction."""
        excess = 0
        if self.max_spans and total > self.max_spans:
            excess = total - int(self.max_spans * (1 - EVICTION_HEADROOM))
        cutoff = now - self.max_age_s if self.max_age_s else None
        self._next_age_check = now + min(AGE_CHECK_INTERVAL_S, self.max_age_s / 10)
        last_seq, dropped, traces, done = None, 0, 0, False
        while not done:
            rows = self._db.execute("SELECT seq, span_count, first_seen FROM traces WHERE seq > ? "
                                    "ORDER BY seq LIMIT 1000", (last_seq or 0,)).fetchall()
            done = len(rows) < 1000
            for seq, count, first_seen in rows:
                if dropped >= excess and (cutoff is None or first_seen >= cutoff):
                    done = True
                    break
                last_seq, dropped, traces = seq, dropped + count, traces + 1
        if last_seq is None:
            return 0, 0
        removed = self._db.execute("DELETE FROM spans WHERE trace_seq <= ?", (last_seq,)).rowcount
        self._db.execute("DELETE FROM traces WHERE seq <= ?", (last_seq,))
        self._db.execute("DELETE FROM operations WHERE last_seq <= ?", (last_seq,))
        return traces, removed

    # --- reading ------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection to read with: this thread's own for a file, the shared one in memory."""
        if self._memory:
            with self._lock:
                yield self._db
            return
        reader = getattr(self._local, "db", None)
        if reader is None:
            reader = self._local.db = self._connect()
            reader.execute("PRAGMA query_only=1")
            with self._lock:
                self._readers.append(reader)
        yield reader

    def _query(self, sql: str, params=()) -> list[tuple]:
        with self._reading() as db:
            return db.execute(sql, params).fetchall()

    def span_count(self) -> int:
        return self._span_total

    def services(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT service FROM operations ORDER BY service")]

    def operations(self, service: str, kind: str | None = None) -> list[tuple[str, str]]:
        """(name, kind) pairs; kind is lowercase like Jaeger's ('server'), '' when unspecified."""
        rows = self._query("SELECT name, kind FROM operations WHERE service = ? ORDER BY name, kind", (service,))
        pairs = [(name, KIND_NAMES.get(k, "")) for name, k in rows]
        return [p for p in pairs if p[1] == kind] if kind else pairs

    def find_trace_ids(self, query: TraceQuery) -> list[str]:
        """Newest first: traces holding one span that meets every condition (as Jaeger's)."""
        spans_where = ["start_ns BETWEEN ? AND ?"]
        spans_params = [query.start_min_ns, query.start_max_ns]
        # Operations whose bounds allow a match: the only ones worth walking.
        ops_where = ["max_start >= ?", "min_start <= ?"]
        ops_params = [query.start_min_ns, query.start_max_ns]
        if query.service:
            ops_where.append("service = ?")
            ops_params.append(query.service)
        if query.operation:
            ops_where.append("name = ?")
            ops_params.append(query.operation)
        if query.duration_min_ns is not None:
            spans_where.append("duration_ns >= ?")
            spans_params.append(query.duration_min_ns)
            ops_where.append("max_duration >= ?")
            ops_params.append(query.duration_min_ns)
        if query.duration_max_ns is not None:
            spans_where.append("duration_ns <= ?")
            spans_params.append(query.duration_max_ns)
            ops_where.append("min_duration <= ?")
            ops_params.append(query.duration_max_ns)
        spans_sql, ops_sql = " AND ".join(spans_where), " AND ".join(ops_where)
        with self._reading() as db:
            op_ids = [r[0] for r in db.execute(f"SELECT id FROM operations WHERE {ops_sql}", ops_params)]
            if len(op_ids) <= PER_OPERATION_SEARCHES:
                # Each operation's spans, newest trace first, stopping at the limit; then the newest of all.
                seqs: set[int] = set()
                for op_id in op_ids:
                    seqs.update(r[0] for r in db.execute(
                        f"SELECT trace_seq FROM spans INDEXED BY spans_by_operation WHERE op_id = ? AND {spans_sql} "
                        "GROUP BY trace_seq ORDER BY trace_seq DESC LIMIT ?", [op_id, *spans_params, query.limit]))
                newest = sorted(seqs, reverse=True)[:query.limit]
            else:
                # Many operations: one walk over all spans, newest trace first.
                newest = [r[0] for r in db.execute(
                    f"SELECT trace_seq FROM spans INDEXED BY spans_by_trace WHERE {spans_sql} AND op_id IN "
                    f"(SELECT id FROM operations WHERE {ops_sql}) GROUP BY trace_seq ORDER BY trace_seq DESC LIMIT ?",
                    [*spans_params, *ops_params, query.limit])]
            if not newest:
                return []
            found = dict(db.execute(f"SELECT seq, trace_id FROM traces WHERE seq IN ({','.join(map(str, newest))})"))
        return [found[seq].hex() for seq in newest if seq in found]

    def export(self, trace_ids: list[str], raw: bool = False) -> ExportTraceServiceRequest:
        """The spans of these traces as one OTLP export request, trace after trace in the order given.

        Within a trace, spans are grouped by resource and scope and ordered by
        start time. Different spans sharing an id all come out; exact copies of
        a span (an exporter's retry) come out once, as Jaeger's query service
        shows them, unless ``raw`` (Jaeger's raw_traces) asks for what was stored.
        """
        request = ExportTraceServiceRequest()
        wanted = list(dict.fromkeys(b for b in (_trace_id_bytes(t) for t in trace_ids) if b is not None))
        for start in range(0, len(wanted), 500):    # SQLite caps the number of ? in a statement
            self._export_into(request, wanted[start:start + 500], raw)
        return request

    def _export_into(self, request: ExportTraceServiceRequest, wanted: list[bytes], raw: bool) -> None:
        with self._reading() as db:
            marks = ",".join("?" * len(wanted))
            seqs = dict(db.execute(f"SELECT trace_id, seq FROM traces WHERE trace_id IN ({marks})", wanted))
            order = [seqs[b] for b in wanted if b in seqs]
            if not order:
                return
            marks = ",".join("?" * len(order))
            rows = db.execute(
                f"SELECT trace_seq, resource_id, scope_id, span FROM spans WHERE trace_seq IN ({marks}) "
                "ORDER BY trace_seq, start_ns, rowid", order).fetchall()
            blobs = self._blob_data(db, {r[1] for r in rows} | {r[2] for r in rows})
        by_trace: dict[int, list[tuple]] = {seq: [] for seq in order}
        for row in rows:
            by_trace[row[0]].append(row)
        for seq in order:
            _append_trace(request, by_trace[seq], blobs, dedupe=not raw)

    def _blob_data(self, db: sqlite3.Connection, ids: set[int]) -> dict[int, bytes]:
        missing = [i for i in ids if i not in self._blobs]
        if missing:
            marks = ",".join("?" * len(missing))
            self._blobs.update(db.execute(f"SELECT id, data FROM blobs WHERE id IN ({marks})", missing))
        return {i: self._blobs[i] for i in ids}

    def traces(self, trace_ids: list[str] | None = None, limit: int | None = None) -> list[Trace]:
        """THE way to trace-model objects: these traces (in the order given), or the newest ``limit``."""
        if trace_ids is None:
            sql = "SELECT trace_id FROM traces ORDER BY seq DESC" + (" LIMIT ?" if limit is not None else "")
            trace_ids = [r[0].hex() for r in self._query(sql, (limit,) if limit is not None else ())]
        elif limit is not None:
            trace_ids = trace_ids[:limit]
        found: list[Trace] = []
        for start in range(0, len(trace_ids), 500):   # a chunk at a time: less memory at once
            groups: dict[str, list] = {}
            for span in spans_from_request(self.export(trace_ids[start:start + 500])):
                groups.setdefault(span.trace_id, []).append(span)
            found += [Trace(spans) for spans in groups.values()]
        return found

    def recent_traces(self, limit: int = 50) -> list[TraceSummary]:
        """Newest traces with the span that heads each (its root, or earliest span)."""
        rows = self._query(
            "SELECT trace_id, head_service, head_name, start_ns, end_ns - start_ns, span_count, error_count "
            "FROM traces ORDER BY seq DESC LIMIT ?", (limit,))
        return [TraceSummary(tid.hex(), *rest) for tid, *rest in rows]


class _Batch:
    """An export request flattened into rows, with per-trace totals: work done before taking the lock."""

    def __init__(self, request: ExportTraceServiceRequest):
        self.now = time.time()
        self.rows: list[tuple] = []
        self.traces: dict[bytes, list] = {}
        # (service, name, kind) -> [min duration, max duration, min start, max start]
        self.operations: dict[tuple[str, str, int], list[int]] = {}
        self.blobs: set[bytes] = set()
        rows, traces, operations = self.rows, self.traces, self.operations
        for rs in request.resource_spans:
            resource = rs.resource.SerializeToString(deterministic=True)
            service = _service_name(rs.resource)
            self.blobs.add(resource)
            for ss in rs.scope_spans:
                scope = ss.scope.SerializeToString(deterministic=True)
                self.blobs.add(scope)
                for span in ss.spans:
                    tid, start, end, name = span.trace_id, span.start_time_unix_nano, span.end_time_unix_nano, span.name
                    op, duration = (service, name, span.kind), end - start if end > start else 0
                    rows.append((tid, op, start, duration, resource, scope, span.SerializeToString()))
                    o = operations.get(op)
                    if o is None:
                        operations[op] = [duration, duration, start, start]
                    else:
                        if duration < o[0]:
                            o[0] = duration
                        elif duration > o[1]:
                            o[1] = duration
                        if start < o[2]:
                            o[2] = start
                        elif start > o[3]:
                            o[3] = start
                    is_root, is_error = 0 if span.parent_span_id else 1, 1 if span.status.code == 2 else 0
                    t = traces.get(tid)
                    if t is None:
                        traces[tid] = [start, end if end > start else start, 1, is_error, is_root, start, service, name]
                        continue
                    if start < t[0]:
                        t[0] = start
                    if end > t[1]:
                        t[1] = end
                    t[2] += 1
                    t[3] += is_error
                    if is_root > t[4] or (is_root == t[4] and start < t[5]):
                        t[4], t[5], t[6], t[7] = is_root, start, service, name


def _service_name(resource) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def _append_trace(request: ExportTraceServiceRequest, rows: list[tuple], blobs: dict[int, bytes],
                  dedupe: bool) -> None:
    """One trace's span rows into resource and scope groups of the request."""
    resources: dict[int, object] = {}
    scopes: dict[tuple[int, int], object] = {}
    seen: set[tuple[int, int, bytes]] = set()
    for _, resource_id, scope_id, data in rows:
        if dedupe:
            if (resource_id, scope_id, data) in seen:
                continue
            seen.add((resource_id, scope_id, data))
        rs = resources.get(resource_id)
        if rs is None:
            rs = resources[resource_id] = request.resource_spans.add()
            rs.resource.MergeFromString(blobs[resource_id])
        ss = scopes.get((resource_id, scope_id))
        if ss is None:
            ss = scopes[(resource_id, scope_id)] = rs.scope_spans.add()
            ss.scope.MergeFromString(blobs[scope_id])
        span = ss.spans.add()
        span.MergeFromString(data)
        span.status.SetInParent()   # Jaeger writes "status": {} even when the status is unset


def _trace_id_bytes(trace_id: str) -> bytes | None:
    """A hex trace id (short ones padded as Jaeger pads them) as 16 bytes; None if it is not one."""
    text = trace_id.strip().lower()
    if not 0 < len(text) <= 32:
        return None
    try:
        return bytes.fromhex(text.rjust(32, "0"))
    except ValueError:
        return None
