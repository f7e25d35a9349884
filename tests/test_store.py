"""The span store: duplicates kept, newest first, one way to traces, and a bound that holds."""

import sqlite3
import time
from contextlib import closing

import pytest
from otlp_payloads import new_span_id, new_trace_id, payload, span

from tracequest.traces.otlp import decode_json
from tracequest.backend.store import PER_OPERATION_SEARCHES, SpanStore, TraceQuery

NOW = time.time_ns()


def request(*services):
    return decode_json(payload(*services))


def chain(trace_id, count, service="svc", name="work", base_ns=NOW):
    """A root and count - 1 children, 1 ms apart."""
    root = new_span_id()
    spans = [span("root", trace_id, root, None, 0, count + 1, "SERVER", base_ns=base_ns)]
    spans += [span(name, trace_id, None, root, i, 1, base_ns=base_ns) for i in range(1, count)]
    return spans


def query(**kw):
    kw.setdefault("service", None)
    return TraceQuery(start_min_ns=NOW - 3_600_000_000_000, start_max_ns=NOW + 3_600_000_000_000, **kw)


def test_spans_sharing_an_id_are_both_kept():
    store = SpanStore()
    t, shared = new_trace_id(), new_span_id()
    store.add(request(("svc", [span("first", t, shared), span("second", t, shared)])))
    assert store.span_count() == 2
    (trace,) = store.traces([t])
    assert sorted(s.name for s in trace) == ["first", "second"]


def test_exact_copies_show_once_unless_raw():
    store = SpanStore()
    t = new_trace_id()
    retried = span("retried", t)
    store.add(request(("svc", [retried])))
    store.add(request(("svc", [retried])))
    assert store.span_count() == 2                      # both stored, as sent
    assert len(store.traces([t])[0]) == 1
    assert len(store.export([t], raw=True).resource_spans) == 1
    spans = [s for rs in store.export([t], raw=True).resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 2


def test_newest_means_most_recently_arrived():
    store = SpanStore()
    first, second = new_trace_id(), new_trace_id()
    store.add(request(("svc", chain(first, 3))))
    store.add(request(("svc", chain(second, 3, base_ns=NOW - 60_000_000_000))))   # started earlier
    assert [t.trace_id for t in store.traces()] == [second, first]
    assert [t.trace_id for t in store.recent_traces()] == [second, first]
    assert store.find_trace_ids(query(service="svc")) == [second, first]
    assert [t.trace_id for t in store.traces([first, second])] == [first, second]   # the order asked
    assert [t.trace_id for t in store.traces(limit=1)] == [second]


def test_summary_heads_a_trace_with_its_root_even_when_it_arrives_last():
    store = SpanStore()
    t, root = new_trace_id(), new_span_id()
    children = [span("child", t, None, root, 5, 10, base_ns=NOW),
                span("broken", t, None, root, 1, 50, error=True, base_ns=NOW)]
    store.add(request(("worker", children)))
    (summary,) = store.recent_traces()
    assert (summary.service, summary.operation, summary.span_count) == ("worker", "broken", 2)
    store.add(request(("gateway", [span("GET /", t, root, None, 0, 100, "SERVER", base_ns=NOW)])))
    (summary,) = store.recent_traces()
    assert (summary.service, summary.operation) == ("gateway", "GET /")
    assert (summary.span_count, summary.error_count, summary.duration_ns) == (3, 1, 100_000_000)
    assert summary.start_ns == NOW


def test_one_span_must_meet_every_condition():
    store = SpanStore()
    t, root = new_trace_id(), new_span_id()
    store.add(request(("svc", [span("fast", t, root, None, 0, 10, base_ns=NOW),
                               span("slow", t, None, root, 1, 100, base_ns=NOW)])))
    assert store.find_trace_ids(query(service="svc", operation="slow", duration_min_ns=50_000_000)) == [t]
    assert store.find_trace_ids(query(service="svc", operation="fast", duration_min_ns=50_000_000)) == []
    assert store.find_trace_ids(query(service="svc", duration_min_ns=20_000_000,
                                      duration_max_ns=50_000_000)) == []
    assert store.find_trace_ids(query(operation="slow")) == [t]          # no service: any service
    assert store.find_trace_ids(query(service="other")) == []


def test_a_service_with_many_operations_searches_alike():
    """Past PER_OPERATION_SEARCHES operations the search walks all spans instead: same answers."""
    store = SpanStore()
    ids = []
    for i in range(PER_OPERATION_SEARCHES + 8):
        ids.append(new_trace_id())
        store.add(request(("busy", chain(ids[-1], 2, name=f"GET /item/{i}"))))
    assert store.find_trace_ids(query(service="busy", limit=3)) == ids[::-1][:3]
    assert store.find_trace_ids(query(service="busy", operation="GET /item/0")) == [ids[0]]
    assert store.find_trace_ids(query(service="busy", duration_min_ns=2_000_000, limit=100)) == ids[::-1]


def test_span_bound_drops_oldest_whole_traces_while_traffic_continues(tmp_path):
    """Traces arrive in two halves across exports, as SDK batches cut them; the bound holds after every add."""
    store = SpanStore(tmp_path / "spans.db", max_spans=500, max_age_s=0)
    traces = [new_trace_id() for _ in range(60)]
    halves = [(t, chain(t, 20)) for t in traces]
    for i in range(len(halves)):
        spans = halves[i][1][:10] + (halves[i - 1][1][10:] if i else [])
        store.add(request(("svc", spans)))
        assert store.span_count() <= 500
    store.add(request(("svc", halves[-1][1][10:])))
    held = {t.trace_id: len(t) for t in store.traces()}
    assert all(count == 20 for count in held.values())               # no trace cut in half
    assert 480 <= sum(held.values()) <= 500
    assert list(held) == traces[::-1][:len(held)]                     # the newest stayed
    with sqlite3.connect(tmp_path / "spans.db") as db:
        assert db.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == store.span_count()
        assert db.execute("SELECT SUM(span_count) FROM traces").fetchone()[0] == store.span_count()
    store.close()


def test_operations_and_services_go_with_their_traces():
    store = SpanStore(max_spans=10, max_age_s=0)
    store.add(request(("old", chain(new_trace_id(), 6, name="old work"))))
    assert store.services() == ["old"]
    store.add(request(("new", chain(new_trace_id(), 6, name="new work"))))
    assert store.services() == ["new"]
    assert store.operations("old") == []
    assert store.operations("new") == [("new work", "internal"), ("root", "server")]
    assert store.operations("new", kind="server") == [("root", "server")]


def test_age_bound():
    store = SpanStore(max_age_s=0.3)
    old, new = new_trace_id(), new_trace_id()
    store.add(request(("svc", chain(old, 3))))
    time.sleep(0.4)
    store.add(request(("svc", chain(new, 3))))                         # enforced while adding
    assert [t.trace_id for t in store.traces()] == [new]
    time.sleep(0.4)
    assert store.enforce_retention() == 1 and store.span_count() == 0


def test_no_bound_when_zero_and_defaults_when_none():
    from tracequest.backend.store import DEFAULT_MAX_AGE_S, DEFAULT_MAX_SPANS

    assert (SpanStore().max_spans, SpanStore().max_age_s) == (DEFAULT_MAX_SPANS, DEFAULT_MAX_AGE_S)
    store = SpanStore(max_spans=0, max_age_s=0)
    for _ in range(5):
        store.add(request(("svc", chain(new_trace_id(), 50))))
    assert store.enforce_retention() == 0 and store.span_count() == 250
    with pytest.raises(ValueError):
        SpanStore(max_spans=-1)


def test_reopening_keeps_spans_and_applies_a_new_bound(tmp_path):
    store = SpanStore(tmp_path / "spans.db", max_spans=0)
    ids = [new_trace_id() for _ in range(10)]
    for t in ids:
        store.add(request(("svc", chain(t, 10))))
    store.close()
    reopened = SpanStore(tmp_path / "spans.db", max_spans=50)
    assert reopened.span_count() <= 50
    assert [t.trace_id for t in reopened.traces()] == ids[::-1][:reopened.span_count() // 10]
    reopened.close()


def test_a_file_from_an_older_schema_is_kept_aside_and_a_new_one_started(tmp_path):
    with closing(sqlite3.connect(tmp_path / "spans.db")) as db, db:
        db.execute("CREATE TABLE spans (trace_id TEXT, span_id TEXT, tags TEXT, PRIMARY KEY (trace_id, span_id))")
        db.execute("INSERT INTO spans VALUES ('a', 'b', '{}')")
    store = SpanStore(tmp_path / "spans.db")
    assert store.span_count() == 0
    with closing(sqlite3.connect(tmp_path / "spans.format0.db")) as kept:
        assert kept.execute("SELECT trace_id, span_id FROM spans").fetchall() == [("a", "b")]
    store.add(request(("svc", chain(new_trace_id(), 2))))
    assert store.span_count() == 2
    store.close()


def test_trace_ids_as_people_type_them():
    store = SpanStore()
    t = "00000000000000000000000000abcdef"
    store.add(request(("svc", chain(t, 2))))
    assert [x.trace_id for x in store.traces(["ABCDEF"])] == [t]     # upper case, leading zeros left out
    assert store.traces(["not-hex"]) == [] and store.traces(["1" * 33]) == []
    assert store.traces([]) == []


def test_many_traces_at_once():
    """Reads go 500 trace ids a statement (SQLite caps ? marks; Jaeger allows num_traces up to 100,000)."""
    store = SpanStore()
    ids = [new_trace_id() for _ in range(1_200)]
    store.add(request(("svc", [span("one", t, base_ns=NOW) for t in ids])))
    found = store.find_trace_ids(query(service="svc", limit=2_000))
    assert found == ids[::-1]
    assert len(store.export(found).resource_spans) == 1_200
    assert [t.trace_id for t in store.traces(ids[:600])] == ids[:600]
