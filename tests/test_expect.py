"""The trace-assertion vocabulary, on traces built by hand.

Every selector is shown picking the right spans, and every assertion both
passing and failing, with the words of its failure checked.
"""

from __future__ import annotations

import re

import pytest

from tracequest.expect import ANY, select
from tracequest.traces.model import Event, Link, Span, Trace
from tracequest.expect.failure import QuestFailure

MS = 1_000_000


def span(trace_id, span_id, parent_id, name, service, kind="INTERNAL", start=0, end=10, **extra):
    return Span(trace_id, span_id, parent_id, name, service, kind, start * MS, end * MS, **extra)


def dispatch(trace_id: str, customer: str, queries: int = 1, routes: int = 3, overlap: bool = False) -> Trace:
    """A small /dispatch: frontend → customer query(s), driver with an error, route calls."""
    t = trace_id
    spans = [
        span(t, "a1", None, "GET /dispatch", "frontend", "SERVER", 0, 500,
             attributes={"http.route": "/dispatch", "customer.id": customer},
             resource={"service.name": "frontend"}),
        span(t, "a2", "a1", "GET /customer", "frontend", "CLIENT", 10, 320),
        span(t, "a3", "a2", "GET /customer", "customer", "SERVER", 12, 318),
        span(t, "a5", "a1", "FindNearest", "driver", "SERVER", 330, 360, status="ERROR",
             attributes={"error.type": "TimeoutError"},
             events=[Event("exception", 340 * MS, {"exception.type": "TimeoutError"})]),
    ]
    for i in range(queries):
        spans.append(span(t, f"q{i}", "a3", "SELECT", "customer", "CLIENT", 20 + i * 100, 110 + i * 100,
                          attributes={"db.system": "sqlite", "db.query.text": f"SELECT * WHERE id={customer}"}))
    for i in range(routes):
        start = 360 + (0 if overlap else i * 40)
        spans.append(span(t, f"r{i}", "a1", "GET /route", "route", "SERVER", start, start + 35))
    return Trace(spans)


@pytest.fixture
def traces():
    return [dispatch("t1", "123"), dispatch("t2", "456", queries=2)]


def failure(assertion) -> QuestFailure:
    with pytest.raises(QuestFailure) as caught:
        assertion()
    return caught.value


# --- selectors --------------------------------------------------------------

def test_select_by_service_name_kind_status_and_attributes(traces):
    assert len(select(traces, service="customer")) == 2 + 3
    assert len(select(traces, name="SELECT", kind="CLIENT")) == 3
    assert len(select(traces, status="ERROR")) == 2
    assert len(select(traces, attributes={"customer.id": "456"})) == 1
    assert len(select(traces, attributes={"error.type": ANY})) == 2
    assert len(select(traces, attributes={"db.query.text": lambda v: v.endswith("123")})) == 1
    assert len(select(traces, name=re.compile(r"GET /\w+"))) == 2 * 6
    assert len(select(traces, name=re.compile("GET"))) == 0          # a regex matches the whole name


def test_select_takes_one_trace_and_reads_resource_attributes(traces):
    one = select(traces[0], attributes={"service.name": "frontend"})
    assert [s.name for s in one] == ["GET /dispatch"]
    assert one.traces == [traces[0]]


def test_select_rejects_a_kind_or_status_that_does_not_exist(traces):
    with pytest.raises(ValueError, match="kind must be one of"):
        select(traces, kind="SERVERS")
    with pytest.raises(ValueError, match="status must be one of"):
        select(traces, status="FAILED")


def test_where_and_matching_narrow_a_selection(traces):
    customer = select(traces, service="customer")
    assert len(customer.where(kind="CLIENT")) == 3
    slow = customer.matching(lambda s: s.duration_ms > 100, "longer than 100ms")
    assert {s.name for s in slow} == {"GET /customer"}
    assert str(slow) == '{service="customer" longer than 100ms}'
    assert len(customer) == 5                                  # the original is untouched


def test_children_parent_descendants_ancestors(traces):
    requests = select(traces, name="GET /dispatch")
    assert {s.service for s in requests.children()} == {"frontend", "driver", "route"}
    assert len(requests.children(service="customer")) == 0
    assert len(requests.descendants(name="SELECT")) == 3
    queries = select(traces, name="SELECT")
    assert [s.name for s in queries.parent()] == ["GET /customer", "GET /customer"]
    assert len(queries.ancestors(kind="SERVER")) == 4           # customer's server and the dispatch, per trace
    assert {s.trace_id for s in queries.ancestors(name="GET /dispatch")} == {"t1", "t2"}


def test_linked_to_keeps_spans_with_a_link_into_the_other_selection():
    producer = Trace([span("p", "p1", None, "publish", "api", "PRODUCER")])
    consumer = Trace([span("c", "c1", None, "process", "worker", "CONSUMER", links=[Link("p", "p1")]),
                      span("c", "c2", "c1", "other", "worker")])
    traces = [producer, consumer]
    linked = select(traces, kind="CONSUMER").linked_to(select(traces, kind="PRODUCER"))
    assert [s.span_id for s in linked] == ["c1"]
    assert linked.traces == [consumer]
    assert not select(traces, name="other").linked_to(select(traces, kind="PRODUCER"))


def test_str_reads_like_traceql(traces):
    sel = select(traces, service="customer", name="SELECT", kind="CLIENT")
    assert str(sel) == '{service="customer" name="SELECT" kind=CLIENT}'
    chain = select(traces, name="GET /dispatch").descendants(service="customer", kind="CLIENT")
    assert str(chain) == '{name="GET /dispatch"} >> {service="customer" kind=CLIENT}'
    assert str(select(traces, attributes={"error.type": ANY, "x": 1})) == "{.error.type .x=1}"
    assert str(select(traces, name=re.compile("GET .*"))) == '{name=~"GET .*"}'

    def is_slow(value):
        return value > 1
    assert str(select(traces, attributes={"t": is_slow})) == "{.t (is slow)}"


def test_spans_traces_len_bool_iter(traces):
    sel = select(traces, name="SELECT")
    assert len(sel) == 3 and bool(sel) and len(list(sel)) == 3
    assert [t.trace_id for t in sel.traces] == ["t1", "t2"]
    assert sel.spans == list(sel)
    assert not select(traces, name="nothing") and select(traces, name="nothing").traces == []


# --- assertions -------------------------------------------------------------

def test_expect_count(traces):
    queries = select(traces[1], name="SELECT")
    assert queries.expect_count(exactly=2) is queries
    queries.expect_count(at_least=1, at_most=2)
    error = failure(lambda: queries.expect_count(at_most=1, hint="cache the customer"))
    assert error.expected == 'at most 1 of spans {name="SELECT"}'
    assert error.found.startswith("2 spans: 'SELECT' (CLIENT span of customer, 90.0ms)")
    assert error.hint == "cache the customer"
    assert "GET /dispatch" in error.details                    # the trace's waterfall
    none = failure(lambda: select(traces, name="nothing").expect_count(exactly=1))
    assert none.found == 'no span matches {name="nothing"}.'
    with pytest.raises(TypeError):
        queries.expect_count()


def test_expect_attribute_value_not_only_presence(traces):
    errors = select(traces, status="ERROR")
    errors.expect_attribute("error.type").expect_attribute("error.type", equals="TimeoutError")
    errors.expect_attribute("error.type", equals=lambda v: v.endswith("Error"))
    errors.expect_attribute("error.type", equals=re.compile(r"\w+Error"))
    wrong = failure(lambda: errors.expect_attribute("error.type", equals="ValueError", hint="the class name"))
    assert wrong.expected == 'every one of spans {status=ERROR} to have attribute error.type = "ValueError"'
    assert wrong.found == ("2 of 2 spans have error.type = \"TimeoutError\" on 'FindNearest', "
                           "\"TimeoutError\" on 'FindNearest'.")
    assert wrong.hint == "the class name"
    missing = failure(lambda: select(traces[0], kind="SERVER").expect_attribute("http.route"))
    assert missing.found.startswith("5 of 6 spans have no attribute http.route: 'GET /customer'")


def test_expect_attribute_reads_service_name_from_the_resource(traces):
    select(traces[0], name="GET /dispatch").expect_attribute("service.name", equals="frontend")
    error = failure(lambda: select(traces[0], name="GET /dispatch").expect_attribute("service.name", "eta"))
    assert error.found == "the span has service.name = \"frontend\" on 'GET /dispatch'."


def test_expect_no_attribute(traces):
    select(traces, service="route").expect_no_attribute("db.query.text")
    error = failure(lambda: select(traces[0], name="SELECT").expect_no_attribute("db.query.text"))
    assert error.expected == 'spans {name="SELECT"} not to carry attribute db.query.text'
    assert error.found == "the span does: db.query.text = \"SELECT * WHERE id=123\" on 'SELECT'."


def test_expect_duration(traces):
    select(traces, name="SELECT").expect_duration(at_least_ms=80, at_most_ms=100)
    error = failure(lambda: select(traces, service="route").expect_duration(at_most_ms=30))
    assert error.expected == 'every one of spans {service="route"} to last at most 30ms'
    assert error.found.startswith("6 of 6 spans did not: 'GET /route' (SERVER span of route, 35.0ms)")
    with pytest.raises(TypeError):
        select(traces).expect_duration()


def test_expect_status(traces):
    select(traces, service="driver").expect_status("ERROR")
    error = failure(lambda: select(traces[0], kind="SERVER", service="customer").expect_status("ok"))
    assert error.expected == 'spans {service="customer" kind=SERVER} to have status OK'
    assert error.found == "the span does not: 'GET /customer' is UNSET."


def test_expect_event_with_and_without_attributes(traces):
    errors = select(traces, status="ERROR")
    errors.expect_event("exception").expect_event("exception", {"exception.type": "TimeoutError"})
    missing = failure(lambda: select(traces[0], service="route").expect_event("exception"))
    assert missing.found.startswith("3 of 3 spans have no such event: 'GET /route' has no events")
    other = failure(lambda: errors.expect_event("exception", {"exception.type": "KeyError"}))
    assert other.expected.endswith("to have an event 'exception' with .exception.type=\"KeyError\"")
    assert "it with other attributes: 'FindNearest' has exception.type=\"TimeoutError\"" in other.found


def test_expect_child_of_and_not_child_of(traces):
    queries = select(traces, name="SELECT")
    servers = select(traces, service="customer", kind="SERVER")
    queries.expect_child_of(servers)
    queries.expect_not_child_of(select(traces, name="GET /dispatch"))
    error = failure(lambda: queries.expect_child_of(select(traces, name="GET /dispatch")))
    assert error.expected == 'every one of spans {name="SELECT"} to be a child of spans {name="GET /dispatch"}'
    assert error.found.startswith("3 of 3 spans are not: 'SELECT' hangs under 'GET /customer' "
                                  "(SERVER span of customer, 306.0ms)")
    error = failure(lambda: queries.expect_not_child_of(servers, hint="use a link"))
    assert error.expected.startswith("none of spans {name=\"SELECT\"} to be a child of")
    assert error.found.startswith("3 of 3 spans are: 'SELECT' hangs under")
    assert error.hint == "use a link"


def test_child_of_says_when_a_span_is_a_root_or_an_orphan():
    traces = [Trace([span("a", "1", None, "work", "svc")]), Trace([span("b", "2", "zz", "lost", "svc")])]
    error = failure(lambda: select(traces).expect_child_of(select(traces, name="nothing")))
    assert "'work' is the root of a trace of its own" in error.found
    assert "'lost' hangs under span zz, which its trace does not hold" in error.found


def test_expect_linked_to_and_not_linked_to():
    producer = Trace([span("p", "p1", None, "publish", "api", "PRODUCER")])
    linked = Trace([span("c", "c1", None, "process", "worker", "CONSUMER", links=[Link("p", "p1")])])
    traces = [producer, linked]
    producers = select(traces, kind="PRODUCER")
    select(traces, kind="CONSUMER").expect_linked_to(producers)
    select(producer).expect_not_linked_to(producers)
    error = failure(lambda: select(Trace([span("p", "p1", None, "publish", "api", "PRODUCER"),
                                          span("p", "c2", "p1", "process", "worker", "CONSUMER")]),
                                   kind="CONSUMER").expect_linked_to(producers, hint="links=[Link(...)]"))
    assert error.found == "the span does not: 'process' has no links."
    assert error.hint == "links=[Link(...)]"
    error = failure(lambda: select(traces, kind="CONSUMER").expect_not_linked_to(producers))
    assert error.found.startswith("the span does: 'process' (CONSUMER span of worker")


def test_expect_one_trace(traces):
    select(traces[0], service="customer").expect_one_trace()
    error = failure(lambda: select(traces, name="GET /dispatch").expect_one_trace(hint="inject()"))
    assert error.expected == 'spans {name="GET /dispatch"} to share one trace'
    assert error.found.startswith("they are spread over 2 traces: 'GET /dispatch'")
    assert "in trace t1" in error.found and "in trace t2" in error.found


def test_expect_same_names_across_two_inputs():
    first, second = dispatch("t1", "123"), dispatch("t2", "456")
    select(first, service="customer").expect_same_names(select(second, service="customer"))
    with_id = [Trace([span("a", "1", None, "GET /customer/123", "customer", "SERVER")]),
               Trace([span("b", "2", None, "GET /customer/456", "customer", "SERVER")])]
    error = failure(lambda: select(with_id[0]).expect_same_names(select(with_id[1]), hint="use the route"))
    assert "named the same for every input" in error.expected
    assert error.found == "one input gave 'GET /customer/123', the other 'GET /customer/456'."


def test_expect_concurrency(traces):
    routes = select(traces, service="route")
    routes.expect_concurrency(at_most=1)
    parallel = select(dispatch("t3", "1", routes=4, overlap=True), service="route")
    parallel.expect_concurrency(at_most=4)
    error = failure(lambda: parallel.expect_concurrency(at_most=3, hint="a pool of 3"))
    assert error.expected == 'at most 3 of spans {service="route"} running at the same time'
    assert error.found.startswith("4 ran at once: 'GET /route'")


def test_spans_that_touch_end_to_start_do_not_overlap():
    touching = Trace([span("a", "1", None, "x", "s", start=0, end=10), span("a", "2", None, "x", "s", start=10, end=20)])
    select(touching).expect_concurrency(at_most=1)


@pytest.mark.parametrize("assertion", [
    lambda s, o: s.expect_attribute("x"),
    lambda s, o: s.expect_no_attribute("x"),
    lambda s, o: s.expect_duration(at_most_ms=1),
    lambda s, o: s.expect_status("OK"),
    lambda s, o: s.expect_event("exception"),
    lambda s, o: s.expect_child_of(o),
    lambda s, o: s.expect_not_child_of(o),
    lambda s, o: s.expect_linked_to(o),
    lambda s, o: s.expect_not_linked_to(o),
    lambda s, o: s.expect_one_trace(),
    lambda s, o: s.expect_same_names(o),
    lambda s, o: s.expect_concurrency(at_most=1),
])
def test_an_assertion_on_no_spans_fails_instead_of_passing_vacuously(traces, assertion):
    nothing = select(traces, name="nothing")
    error = failure(lambda: assertion(nothing, select(traces)))
    assert error.found == 'no span matches {name="nothing"}, so there is nothing to check.'
    assert error.expected.startswith('spans {name="nothing"} with')


def test_named_selection_speaks_in_its_own_words(traces):
    request = select(traces[0], kind="SERVER", service="frontend").named("the request span 'GET /dispatch'")
    error = failure(lambda: request.expect_duration(at_most_ms=100))
    assert error.expected == "the request span 'GET /dispatch' to last at most 100ms"


def test_failure_renders_expected_found_waterfall_and_hint(traces):
    error = failure(lambda: select(traces[0], name="SELECT").expect_count(exactly=2, hint="run it twice"))
    text = error.render()
    assert text.startswith("Expected: exactly 2 of spans {name=\"SELECT\"}\nFound:    1 span: 'SELECT'")
    assert "Hint:     run it twice" in text
    assert "GET /dispatch" in text


def test_expect_count_per_trace(traces):
    dispatches = select(traces, name="GET /dispatch")
    dispatches.descendants(name="SELECT").expect_count(at_least=1, per_trace=True)
    select(traces, name="SELECT").expect_count(at_most=2, per_trace=True)
    error = failure(lambda: dispatches.descendants(name="SELECT").expect_count(at_most=1, per_trace=True))
    assert error.expected == 'at most 1 of spans {name="GET /dispatch"} >> {name="SELECT"} in every trace'
    assert error.found.startswith("trace t2 has 2 spans: 'SELECT'")
    assert "trace t2" in error.details
    nothing = failure(lambda: select(traces, name="FindNearest").children().expect_count(exactly=1,
                                                                                      per_trace=True))
    assert nothing.found == "trace t1 has none."


def test_each_gives_one_selection_per_span(traces):
    queries = list(select(traces, name="SELECT").each())
    assert [len(q) for q in queries] == [1, 1, 1]
    assert queries[0].label == "'SELECT' (CLIENT span of customer, 90.0ms)"
    error = failure(lambda: queries[0].expect_duration(at_most_ms=1))
    assert error.expected == "'SELECT' (CLIENT span of customer, 90.0ms) to last at most 1ms"


def test_expect_no_event(traces):
    select(traces, service="route").expect_no_event("exception")
    error = failure(lambda: select(traces[0], status="ERROR").expect_no_event("exception"))
    assert error.expected == "spans {status=ERROR} not to have an event 'exception'"
    assert error.found.startswith("the span does: 'FindNearest'")


def test_expect_separate_traces(traces):
    select(traces, name="GET /dispatch").expect_separate_traces()
    error = failure(lambda: select(traces, name="SELECT").expect_separate_traces(hint="no fixed ids"))
    assert error.expected == 'each of spans {name="SELECT"} in a trace of its own'
    assert error.found.startswith("the 3 spans share 2 traces: 'SELECT' (CLIENT span of customer, 90.0ms), "
                                  "'SELECT' (CLIENT span of customer, 90.0ms) are all in trace t2")


def test_expect_in_trace_of_and_not_in_trace_of(traces):
    first, second = select(traces[0]), select(traces[1])
    select(traces[0], name="SELECT").expect_in_trace_of(first).expect_not_in_trace_of(second)
    error = failure(lambda: select(traces, name="SELECT").expect_in_trace_of(first))
    assert error.expected.startswith('every one of spans {name="SELECT"} to be in the same trace as spans {}')
    assert error.found.startswith("2 of 3 spans are in another trace: 'SELECT'")
    error = failure(lambda: select(traces[0], name="SELECT").expect_not_in_trace_of(first, hint="links"))
    assert error.expected == 'spans {name="SELECT"} not to be in a trace of spans {}'
    assert error.found.startswith("the span is in one: 'SELECT'")


def test_a_failed_link_names_what_it_points_at():
    request = Trace([span("p", "r1", None, "GET /notify", "api", "SERVER"),
                     span("p", "p1", "r1", "publish", "api", "PRODUCER")])
    consumer = Trace([span("c", "c1", None, "process", "worker", "CONSUMER", links=[Link("p", "r1")])])
    stray = Trace([span("d", "c2", None, "process", "worker", "CONSUMER", links=[Link("x", "gone")])])
    traces = [request, consumer, stray]
    error = failure(lambda: select(traces, kind="CONSUMER").expect_linked_to(select(traces, kind="PRODUCER")))
    assert "'process' links to 'GET /notify' (SERVER span of api, 10.0ms)" in error.found
    assert "'process' links to span gone of trace x, which no trace here holds" in error.found


def test_expect_event_of_any_name(traces):
    select(traces, status="ERROR").expect_event(ANY)
    error = failure(lambda: select(traces[0], service="route").expect_event(ANY))
    assert error.expected == 'every one of spans {service="route"} to have an event'


def test_expect_attribute_count(traces):
    select(traces, name="SELECT").expect_attribute_count(at_least=2, at_most=2)
    error = failure(lambda: select(traces[0], service="driver").expect_attribute_count(at_least=2))
    assert error.expected == 'spans {service="driver"} to carry at least 2 attributes'
    assert error.found == "the span does not: 'FindNearest' has 1 attribute (error.type)."


def test_expect_descendant_of(traces):
    select(traces, name="SELECT").expect_descendant_of(select(traces, name="GET /dispatch"))
    error = failure(lambda: select(traces, name="GET /dispatch").expect_descendant_of(select(traces)))
    assert error.found.startswith("2 of 2 spans do not: 'GET /dispatch' is the root of a trace of its own")
