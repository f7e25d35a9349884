"""Quest 05, when things break: a failed Redis call says so in the trace, in standard words."""

import pytest

from tracequest.quests.describe import span_label, spans_of
from tracequest.quests.failure import fail

pytestmark = pytest.mark.quest("05")

SEMCONV = {"db.system.name": "redis", "db.operation.name": "GET"}
RENAMES = ("backend -> db.system.name, redis.command -> db.operation.name, "
           "redis.key -> db.query.text")


def test_a_failed_redis_call_is_recorded_as_an_error(run):
    """GET /driver?id=T13 (Redis times out) marks the Redis span failed; GET /driver?id=T7 does not."""
    driver = run.app("app.py", name="driver")
    run.start()
    _get(driver, "/driver?id=T7", ok=True)
    _get(driver, "/driver?id=T13", ok=False)
    traces = run.traces()

    requests = sorted((s for s in spans_of(traces) if s.kind == "SERVER"), key=lambda s: s.start_ns)
    if len(requests) != 2:
        fail("two traces, one per request", f"the backend got {len(requests)} request spans.",
             "telemetry.py sets those up; undo any change you made there.")
    happy, broken = (_trace_for(traces, s) for s in requests)
    request_span = requests[1]

    call = _redis_span(broken, request_span)
    exception = call.event("exception")
    if exception is None:
        elsewhere = [s for s in broken if s.event("exception")]
        if elsewhere:
            fail(f"the exception recorded on {span_label(call)}, the span around the Redis call",
                 f"it was recorded on {span_label(elsewhere[0])} instead.",
                 "call span.record_exception(exc) inside the `with` block of the Redis span, "
                 "in its except clause; after the block the current span is the request.",
                 trace=broken)
        fail(f"an 'exception' event on {span_label(call)} describing the RedisTimeout",
             f"the span has status {call.status} and "
             f"{'no events' if not call.events else 'events ' + ', '.join(e.name for e in call.events)}.",
             "in the except clause, call span.record_exception(exc): it adds the 'exception' "
             "event with exception.type, exception.message and the stack trace.",
             trace=broken)

    missing = [k for k in ("exception.type", "exception.message") if not exception.attributes.get(k)]
    if missing or "RedisTimeout" not in str(exception.attributes.get("exception.type")):
        fail("an 'exception' event with exception.type RedisTimeout and its message",
             f"the event has {', '.join(sorted(exception.attributes)) or 'no attributes'}.",
             "let span.record_exception(exc) write the event instead of add_event(...): "
             "it fills in every exception.* attribute.")

    if call.status != "ERROR":
        fail(f"{span_label(call)} to have status ERROR",
             f"its status is {call.status}: the exception is there, but the span does not "
             "count as failed, so error searches and error rates miss it.",
             "call span.set_status(Status(StatusCode.ERROR, str(exc))) in the except clause.",
             trace=broken)

    wrong = {k: call.attributes.get(k) for k, v in SEMCONV.items() if call.attributes.get(k) != v}
    if wrong or not call.attributes.get("db.query.text"):
        names = ", ".join(sorted(call.attributes)) or "none"
        fail("the semantic-convention names db.system.name='redis', db.operation.name='GET' "
             "and db.query.text on the Redis span",
             f"its attributes are: {names}.",
             f"rename them: {RENAMES}. The constants are in "
             "opentelemetry.semconv.attributes.db_attributes.")

    if not call.attributes.get("error.type"):
        fail("error.type on the failed Redis span, naming what went wrong",
             "the span has no error.type attribute.",
             "in the except clause: span.set_attribute(ERROR_TYPE, type(exc).__qualname__), "
             "with ERROR_TYPE from opentelemetry.semconv.attributes.error_attributes.")

    fine = _redis_span(happy, requests[0])
    if fine.status == "ERROR" or fine.event("exception") or "error.type" in fine.attributes:
        fail("the successful lookup (id=T7) to carry no error",
             f"{span_label(fine)} has status {fine.status}"
             f"{', an exception event' if fine.event('exception') else ''}"
             f"{', error.type' if 'error.type' in fine.attributes else ''}.",
             "set the error status, error.type and the exception only in the except clause.",
             trace=happy)


def _get(driver, path: str, ok: bool) -> None:
    answer = driver.get(path)
    if ok and answer.status_code != 200:
        fail(f"GET {path} to answer 200", f"it answered {answer.status_code}.",
             "run python app.py and open that URL to see what breaks.", details=driver.tail())
    if not ok and answer.status_code < 500:
        fail(f"GET {path} to fail (Redis times out for T13) with a 5xx status",
             f"it answered {answer.status_code}.",
             "keep redis_sim.py as it is: driver T13 is the one that always times out.")


def _trace_for(traces, span):
    return next(t for t in traces if t.trace_id == span.trace_id)


def _redis_span(trace, request):
    """The span around the Redis call: a CLIENT span, else any span under the request."""
    below = [s for s in trace if s is not request]
    calls = [s for s in below if s.kind == "CLIENT"] or below
    if not calls:
        fail(f"a span around the Redis call inside {span_label(request)}",
             "the request span has no children.",
             "keep the `with tracer.start_as_current_span(\"GET\", kind=SpanKind.CLIENT)` "
             "block in fetch_driver().",
             trace=trace)
    return calls[0]
