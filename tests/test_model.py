"""The trace model and its analyses, on hand-built traces with known answers."""

import pytest
from otlp_payloads import designed_trace, new_span_id, new_trace_id, payload, span

from tracequest.traces.model import Trace, group_traces
from tracequest.traces.otlp import decode_json, decode_protobuf, encode_json, parse_otlp, spans_from_request


def build(document) -> Trace:
    (trace,) = group_traces(parse_otlp(document))
    return trace


def test_tree_links_children_to_parents():
    document, ids = designed_trace()
    trace = build(document)
    assert len(trace) == 6
    assert trace.root.span_id == ids["A"]
    assert [c.span_id for c in trace.span(ids["A"]).children] == [ids["B"], ids["E"], ids["F"]]
    assert trace.span(ids["D"]).parent.span_id == ids["C"]
    assert trace.roots == [trace.root] and trace.orphans == []


def test_walk_is_depth_first_in_start_order():
    document, ids = designed_trace()
    trace = build(document)
    order = [(s.span_id, depth) for s, depth in trace.walk()]
    assert order == [(ids["A"], 0), (ids["B"], 1), (ids["C"], 2), (ids["D"], 3), (ids["E"], 1), (ids["F"], 1)]


def test_self_time_subtracts_children_once():
    document, ids = designed_trace()
    trace = build(document)
    self_ms = {k: trace.self_time_ns(trace.span(ids[k])) / 1e6 for k in "ABCDEF"}
    assert self_ms == pytest.approx({"A": 5, "B": 4, "C": 6, "D": 30, "E": 30, "F": 50})


def test_slowest_span_is_by_self_time_not_duration():
    document, ids = designed_trace()
    trace = build(document)
    assert trace.slowest_span().span_id == ids["F"]
    assert max(trace, key=lambda s: s.duration_ns).span_id == ids["A"]


def test_critical_path_skips_the_parallel_span():
    document, ids = designed_trace()
    trace = build(document)
    assert [s.span_id for s in trace.critical_path()] == [ids[k] for k in "ABCDF"]


def test_orphans_and_multiple_roots_are_reported():
    t = new_trace_id()
    missing_parent = new_span_id()
    document = payload(("driver", [
        span("root one", t, kind="SERVER"),
        span("root two", t, start_ms=5, kind="SERVER"),
        span("lost child", t, parent=missing_parent, start_ms=1),
    ]))
    trace = build(document)
    assert [s.name for s in trace.roots] == ["root one", "root two"]
    assert [s.name for s in trace.orphans] == ["lost child"]
    assert [s.name for s in trace.top_level] == ["root one", "lost child", "root two"]


def test_services_and_grouping():
    document, _ = designed_trace()
    trace = build(document)
    assert trace.services == ["frontend", "customer"]
    groups = trace.by_service()
    assert len(groups["frontend"]) == 4 and len(groups["customer"]) == 2
    assert [s.name for s in trace.errors] == ["GET driver"]
    assert trace.find(kind="SERVER", service="customer")[0].name == "GET /customer"


def test_span_fields_come_through():
    document, ids = designed_trace()
    trace = build(document)
    root = trace.span(ids["A"])
    assert root.kind == "SERVER" and root.service == "frontend"
    assert root.attributes == {"http.request.method": "GET", "customer.id": "123"}
    assert root.resource["service.name"] == "frontend"
    sql = trace.span(ids["D"])
    assert sql.event("waiting for lock behind 2 requests") is not None
    assert trace.span(ids["E"]).is_error and trace.span(ids["E"]).status_message == "boom"
    assert trace.duration_ms == pytest.approx(100)


def test_json_and_protobuf_give_the_same_model():
    document, _ = designed_trace()
    request = decode_json(document)
    again = decode_protobuf(request.SerializeToString())
    from_json = spans_from_request(request)
    from_proto = spans_from_request(again)
    assert [(s.span_id, s.parent_id, s.name, s.start_ns, s.attributes) for s in from_json] == \
           [(s.span_id, s.parent_id, s.name, s.start_ns, s.attributes) for s in from_proto]


def test_encode_json_round_trips_with_hex_ids():
    document, ids = designed_trace()
    out = encode_json(decode_json(document))
    first = out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert first["traceId"] == ids["trace"] and first["spanId"] == ids["A"]
    assert first["kind"] == 2  # Jaeger writes enums as integers
    assert build(out).trace_id == ids["trace"]


def test_group_traces_splits_by_trace_id_newest_first():
    old, _ = designed_trace(base_ns=1_000_000_000_000_000_000)
    new, new_ids = designed_trace(base_ns=2_000_000_000_000_000_000)
    merged = {"resourceSpans": old["resourceSpans"] + new["resourceSpans"]}
    traces = group_traces(parse_otlp(merged))
    assert [t.trace_id for t in traces][0] == new_ids["trace"] and len(traces) == 2


def test_a_trace_refuses_mixed_or_empty_input():
    with pytest.raises(ValueError):
        Trace([])
    a, _ = designed_trace()
    b, _ = designed_trace()
    with pytest.raises(ValueError):
        Trace(parse_otlp(a) + parse_otlp(b))
