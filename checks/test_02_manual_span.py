"""Quest 02, a span of your own: the slow pricing work gets a named span inside the request.

Two fares are asked for (12 km, then 3 km): a span name that carries the
argument, or an attribute that ignores it, only shows when the input changes.
"""

import pytest

from tracequest.expect import ANY, select
from tracequest.expect.failure import fail

pytestmark = pytest.mark.quest("02")

DELAY_MS = 250  # how long compute_fare() sleeps during the check
DISTANCES = (12.0, 3.0)
GENERIC_NAMES = {"span", "my span", "myspan", "my-span", "my_span", "manual", "manual span",
                 "new span", "test", "todo", "foo", "bar", "work", "operation", "name"}

WRAP_HINT = ("in compute_fare(), put the work inside "
             "`with tracer.start_as_current_span(\"compute fare\") as span:`.")
INSIDE_HINT = ("open the span with tracer.start_as_current_span(name) while the request is "
               "handled, and pass no context=: the current span, the request, becomes its parent.")
COVER_HINT = ("a span measures from its start to its end: keep the time.sleep(...) and the "
              "price calculation inside the `with` block.")
NAME_HINT = "name spans after the operation they time; it is what you read in a waterfall."
STABLE_HINT = ("keep ids and arguments out of span names (backends group spans by name); put the "
               "distance in an attribute instead: span.set_attribute(\"fare.distance_km\", km).")
ATTRIBUTES_HINT = ("record what the work depends on: span.set_attribute(\"fare.distance_km\", km) "
                   "and span.set_attribute(\"fare.surge_multiplier\", surge).")
DISTANCE_HINT = ("fare.distance_km records the distance this request asked for: "
                 "span.set_attribute(\"fare.distance_km\", km), the argument, not a fixed number.")
EVENT_HINT = ("mark the moment the price is known: span.add_event(\"fare priced\", "
              "{\"fare.amount\": price}).")


def test_compute_fare_has_its_own_span(run):
    """compute_fare() shows up as a named span, inside GET /fare, with attributes and an event."""
    fares = run.app("app.py", name="fares", env={"FARE_DELAY_MS": str(DELAY_MS)})
    run.start()
    for km in DISTANCES:
        answer = fares.get(f"/fare?km={km:g}")
        if answer.status_code != 200:
            fail(f"GET /fare?km={km:g} to answer 200", f"it answered {answer.status_code}.",
                 "run python app.py, open http://127.0.0.1:5002/fare?km=12 and read the error.",
                 details=fares.tail())
    traces = run.traces()

    requests = select(traces, kind="SERVER", name="GET /fare").named("request spans 'GET /fare'")
    requests.expect_count(exactly=len(DISTANCES),
                          hint="telemetry.py sets that span up; undo any change you made there.")

    own = select(traces).matching(lambda s: s.kind != "SERVER", "not the request") \
        .named("spans of your own around the work in compute_fare()")
    own.expect_count(at_least=1, hint=WRAP_HINT)
    own.expect_descendant_of(requests, hint=INSIDE_HINT)

    in_order = sorted(requests.each(), key=lambda request: request.spans[0].start_ns)
    works = [_longest(request, km) for request, km in zip(in_order, DISTANCES)]
    for work in works:
        work.expect_duration(at_least_ms=0.9 * DELAY_MS, hint=COVER_HINT)
        work.matching(_generic, "named like 'span', 'test' or the route") \
            .named("spans with a name that does not say what the work is") \
            .expect_count(exactly=0, hint=NAME_HINT)
    works[0].expect_same_names(works[1], hint=STABLE_HINT)

    for work, km in zip(works, DISTANCES):
        work.expect_attribute_count(at_least=2, hint=ATTRIBUTES_HINT)
        work.expect_attribute("fare.distance_km", equals=_number(km), hint=DISTANCE_HINT)
        work.expect_event(ANY, hint=EVENT_HINT)


def _longest(request, km: float):
    """The longest span under one request: the one that should cover compute_fare()."""
    inside = request.descendants()
    longest = max(inside, key=lambda s: s.duration_ns, default=None)
    return inside.matching(lambda s: s is longest, "the longest") \
        .named(f"your span in GET /fare?km={km:g}")


def _generic(span) -> bool:
    return span.name.strip().lower() in GENERIC_NAMES or "/fare" in span.name


def _number(km: float):
    """A test for the recorded distance: the number asked for, as a number or its text."""
    def the_distance_asked_for(value) -> bool:
        try:
            return float(value) == km
        except (TypeError, ValueError):
            return False
    the_distance_asked_for.__name__ = f"equal to {km:g}"
    return the_distance_asked_for
