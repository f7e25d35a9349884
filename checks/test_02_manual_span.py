"""Quest 02, a span of your own: the slow pricing work gets a named span inside the request."""

import pytest

from tracequest.quests.describe import list_spans, plural, span_label, spans_of, trace_of
from tracequest.quests.failure import fail

pytestmark = pytest.mark.quest("02")

DELAY_MS = 250  # how long compute_fare() sleeps during the check
GENERIC_NAMES = {"span", "my span", "myspan", "my-span", "my_span", "manual", "manual span",
                 "new span", "test", "todo", "foo", "bar", "work", "operation", "name"}


def test_compute_fare_has_its_own_span(run):
    """compute_fare() shows up as a named span, inside GET /fare, with attributes and an event."""
    fares = run.app("app.py", name="fares", env={"FARE_DELAY_MS": str(DELAY_MS)})
    run.start()
    answer = fares.get("/fare?km=12")
    if answer.status_code != 200:
        fail("GET /fare?km=12 to answer 200", f"it answered {answer.status_code}.",
             "run python app.py, open http://127.0.0.1:5002/fare?km=12 and read the error.",
             details=fares.tail())
    traces = run.traces()
    spans = spans_of(traces)

    requests = [s for s in spans if s.kind == "SERVER" and "/fare" in s.name]
    if not requests:
        fail("a SERVER span 'GET /fare' for the request",
             f"the backend got {list_spans(spans)}.",
             "telemetry.py sets that span up; undo any change you made there.")
    request = requests[0]
    trace = trace_of(traces, request)

    own = [s for s in spans if s.kind != "SERVER"]
    if not own:
        fail("a span of your own around the work in compute_fare()",
             "the trace holds only the request span 'GET /fare'.",
             "in compute_fare(), put the work inside "
             "`with tracer.start_as_current_span(\"compute fare\") as span:`.",
             trace=trace)

    inside = [s for s in own if _inside(s, request)]
    if not inside:
        stray = max(own, key=lambda s: s.duration_ns)
        where = ("it started a trace of its own" if not stray.parent_id
                 else "its parent is not in the request's trace")
        fail(f"your span to sit inside the request span 'GET /fare' ({request.service})",
             f"{span_label(stray)} is not inside it: {where}.",
             "open the span with tracer.start_as_current_span(name) while the request is "
             "handled, and pass no context=: the current span, the request, becomes its parent.",
             trace=trace)

    span = max(inside, key=lambda s: s.duration_ns)
    if span.duration_ns < 0.9 * DELAY_MS * 1e6:
        fail(f"your span to cover the slow pricing work: at least {0.9 * DELAY_MS:.0f}ms "
             f"of compute_fare()'s {DELAY_MS}ms",
             f"{span_label(span)} lasted only {span.duration_ms:.1f}ms.",
             "a span measures from its start to its end: keep the time.sleep(...) and the "
             "price calculation inside the `with` block.",
             trace=trace)

    if span.name.strip().lower() in GENERIC_NAMES or "/fare" in span.name:
        fail("a name that says what the work is, such as 'compute fare'",
             f"the span is called '{span.name}'.",
             "name spans after the operation they time; it is what you read in a waterfall.",
             trace=trace)

    if len(span.attributes) < 2:
        found = ", ".join(sorted(span.attributes)) or "none"
        fail(f"at least 2 attributes on '{span.name}'",
             f"it has {plural(len(span.attributes), 'attribute')} ({found}).",
             "record what the work depends on: span.set_attribute(\"fare.distance_km\", km) "
             "and span.set_attribute(\"fare.surge_multiplier\", surge).")

    events = [e for e in span.events if e.name != "exception"]
    if not events:
        fail(f"an event on '{span.name}'",
             "it has no events.",
             "mark the moment the price is known: span.add_event(\"fare priced\", "
             "{\"fare.amount\": price}).")


def _inside(span, request) -> bool:
    """True if ``request`` is the span's parent, grandparent, and so on."""
    ancestor = span.parent
    while ancestor is not None:
        if ancestor is request:
            return True
        ancestor = ancestor.parent
    return False
