"""Service dependencies counted from designed traces, and drawn as text and SVG."""

import xml.etree.ElementTree as ET

from otlp_payloads import designed_trace, new_span_id, new_trace_id, payload, span

from tracequest.traces.dependencies import (
    DependencyGraph,
    call_depths,
    dependencies_html,
    dependencies_text,
    service_calls,
)
from tracequest.traces.model import group_traces
from tracequest.traces.otlp import parse_otlp

SVG = "{http://www.w3.org/2000/svg}"


def traces_of(*documents):
    return [t for d in documents for t in group_traces(parse_otlp(d))]


def dispatch_trace():
    """frontend calls customer once, driver once and route twice; driver calls redis three times.

    Spans inside one service (the SQL query, driver's own work) are not calls,
    and an orphan in route (its parent never arrived) is not a call either.
    """
    t = new_trace_id()
    root, cust, drv, r1, r2, find, query = (new_span_id() for _ in range(7))
    frontend = [span("GET /dispatch", t, root), span("GET customer", t, cust, root),
                span("GET driver", t, drv, root), span("GET route", t, r1, root), span("GET route", t, r2, root)]
    customer = [span("GET /customer", t, query, cust), span("SELECT", t, parent=query)]
    driver = [span("FindNearest", t, find, drv), span("work", t, parent=find)]
    redis = [span("GetDriver", t, parent=find) for _ in range(3)]
    route = [span("GET /route", t, parent=r1), span("GET /route", t, parent=r2),
             span("GET /route", t, parent=new_span_id())]
    return payload(("frontend", frontend), ("customer", customer), ("driver", driver),
                   ("redis", redis), ("route", route))


def test_designed_trace_has_one_call():
    document, _ = designed_trace()
    assert service_calls(traces_of(document)) == {("frontend", "customer"): 1}


def test_calls_add_up_over_traces_and_a_single_trace_is_accepted():
    traces = traces_of(designed_trace()[0], designed_trace()[0], dispatch_trace())
    assert service_calls(traces) == {
        ("frontend", "customer"): 3,
        ("frontend", "driver"): 1,
        ("frontend", "route"): 2,
        ("driver", "redis"): 3,
    }
    assert service_calls(traces[0]) == {("frontend", "customer"): 1}
    assert service_calls([]) == {}


def test_call_depths_put_entry_services_first():
    calls = service_calls(traces_of(dispatch_trace()))
    assert call_depths(calls) == {"frontend": 0, "customer": 1, "driver": 1, "route": 1, "redis": 2}
    # A circle of calls has no entry: the service calling out the most stands in.
    circle = {("route", "frontend"): 1, ("frontend", "route"): 1, ("frontend", "driver"): 1}
    assert call_depths(circle) == {"frontend": 0, "driver": 1, "route": 1}


def test_text_lists_connections_in_depth_order():
    calls = service_calls(traces_of(dispatch_trace()))
    assert dependencies_text(calls).splitlines() == [
        "frontend -> customer      1 call",
        "frontend -> driver        1 call",
        "frontend -> route         2 calls",
        "driver -> redis           3 calls",
    ]
    assert dependencies_text({}) == "no calls between services"


def test_svg_has_a_box_per_service_in_depth_columns_and_labelled_arrows():
    calls = service_calls(traces_of(dispatch_trace()))
    svg = ET.fromstring(dependencies_html(calls))  # well-formed XML, or this raises
    boxes = {}
    for group in svg.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        if title is not None:
            boxes[title.text] = int(group.find(f"{SVG}rect").get("x"))
    assert set(boxes) == {"frontend", "customer", "driver", "route", "redis"}
    assert boxes["frontend"] < boxes["customer"] == boxes["driver"] == boxes["route"] < boxes["redis"]
    edges = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "tqdep-edge"]
    assert all(e.find(f"{SVG}path").get("marker-end") == "url(#tqdep-arrow)" for e in edges)
    labels = sorted(e.find(f"{SVG}text").text for e in edges)
    assert labels == ["1 call", "1 call", "2 calls", "3 calls"]


def test_svg_escapes_service_names():
    t = new_trace_id()
    root = new_span_id()
    document = payload(("<web>", [span("a", t, root)]), ("db & co", [span("b", t, parent=root)]))
    text = dependencies_html(service_calls(traces_of(document)))
    assert "<web>" not in text and "&lt;web&gt;" in text and "db &amp; co" in text
    ET.fromstring(text)


def test_no_calls_draws_a_sentence_not_an_empty_picture():
    assert "No calls between services" in dependencies_html({})


def test_dependency_graph_draws_itself_in_jupyter():
    traces = traces_of(dispatch_trace())
    graph = DependencyGraph.from_traces(traces)
    assert graph.calls == service_calls(traces)
    assert graph._repr_html_() == dependencies_html(graph.calls)
    assert str(graph) == dependencies_text(graph.calls)
    assert graph.services == ["frontend", "customer", "driver", "route", "redis"]
    assert repr(graph) == "<DependencyGraph 5 services, 4 connections>"
