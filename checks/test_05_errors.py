"""Quest 05, when things break: a failed Redis call says so in the trace, in standard words.

Two lookups: T7 succeeds and T13 times out. Values are checked, not only
names (error.type must name the exception's class), on both inputs (the
query text follows the driver asked for, the span name does not).
"""

import pytest

from tracequest.expect import select
from tracequest.expect.failure import fail

pytestmark = pytest.mark.quest("05")

HAPPY, BROKEN = "T7", "T13"
RENAMES = ("backend -> db.system.name, redis.command -> db.operation.name, "
           "redis.key -> db.query.text")
SEMCONV_HINT = (f"use the semantic-convention names: {RENAMES}. The constants are in "
                "opentelemetry.semconv.attributes.db_attributes.")
QUERY_HINT = ("db.query.text is the whole command sent to Redis, \"GET driver:T7\": "
              "f\"GET {key}\", not the key alone.")
RECORD_HINT = ("in the except clause, call span.record_exception(exc): it adds the 'exception' "
               "event with exception.type, exception.message and the stack trace.")
BY_HAND_HINT = ("let span.record_exception(exc) write the event instead of add_event(...): "
                "it fills in every exception.* attribute.")
STATUS_HINT = ("the exception is there, but the span does not count as failed, so error searches "
               "and error rates miss it: call span.set_status(Status(StatusCode.ERROR, str(exc))) "
               "in the except clause.")
ERROR_TYPE_HINT = ("error.type names the kind of error, not the message: in the except clause, "
                   "span.set_attribute(ERROR_TYPE, type(exc).__qualname__), with ERROR_TYPE from "
                   "opentelemetry.semconv.attributes.error_attributes.")
NAME_HINT = ("keep the span's name \"GET\" (the operation): the key belongs in db.query.text, "
             "and a name with an id in it makes a new operation for every driver.")
CLEAN_HINT = "set the error status, error.type and the exception only in the except clause."


def test_a_failed_redis_call_is_recorded_as_an_error(run):
    """GET /driver?id=T13 (Redis times out) marks the Redis span failed; GET /driver?id=T7 does not."""
    driver = run.app("app.py", name="driver")
    run.start()
    _get(driver, f"/driver?id={HAPPY}", ok=True)
    _get(driver, f"/driver?id={BROKEN}", ok=False)
    traces = run.traces()

    requests = select(traces, kind="SERVER").named("request spans, one per request")
    requests.expect_count(exactly=2, hint="telemetry.py sets those up; undo any change you made there.")
    happy_request, broken_request = sorted(requests.each(), key=lambda r: r.spans[0].start_ns)
    happy = _redis_span(happy_request, HAPPY)
    broken = _redis_span(broken_request, BROKEN)

    broken.expect_event("exception", hint=_where_recorded(broken_request))
    broken.expect_event("exception", {"exception.type": _class_named("RedisTimeout"),
                                      "exception.message": _mentions(f"driver:{BROKEN}")},
                        hint=BY_HAND_HINT)
    broken.expect_status("ERROR", hint=STATUS_HINT)

    for redis, driver_id in ((broken, BROKEN), (happy, HAPPY)):
        redis.expect_attribute("db.system.name", equals="redis", hint=SEMCONV_HINT)
        redis.expect_attribute("db.operation.name", equals="GET", hint=SEMCONV_HINT)
        redis.expect_attribute("db.query.text", equals=f"GET driver:{driver_id}", hint=QUERY_HINT)
    broken.expect_attribute("error.type", equals=_class_named("RedisTimeout"), hint=ERROR_TYPE_HINT)
    happy.expect_same_names(broken, hint=NAME_HINT)

    happy.expect_no_event("exception", hint=CLEAN_HINT)
    happy.expect_no_attribute("error.type", hint=CLEAN_HINT)
    happy.where(status="ERROR").named(f"Redis spans of the successful lookup ({HAPPY}) with status ERROR") \
        .expect_count(exactly=0, hint=CLEAN_HINT)


def _redis_span(request, driver_id: str):
    """The span around the Redis call under one request: its CLIENT span."""
    redis = request.descendants(kind="CLIENT").named(f"the Redis span of GET /driver?id={driver_id}")
    redis.expect_count(exactly=1, hint="keep the `with tracer.start_as_current_span(\"GET\", "
                                       "kind=SpanKind.CLIENT)` block in fetch_driver().")
    return redis


def _where_recorded(request) -> str:
    """The hint for a missing exception event: recorded on the wrong span, or not at all."""
    elsewhere = [s for s in request.spans + request.descendants().spans
                 if s.kind != "CLIENT" and s.event("exception")]
    if elsewhere:
        return (f"the exception was recorded on '{elsewhere[0].name}' instead: call "
                "span.record_exception(exc) inside the `with` block of the Redis span, in its "
                "except clause; after the block the current span is the request.")
    return RECORD_HINT


def _class_named(name: str):
    """A test for a value naming an exception class: 'RedisTimeout' or 'redis_sim.RedisTimeout'."""
    def test(value) -> bool:
        return isinstance(value, str) and (value == name or value.endswith("." + name))
    test.__name__ = f"naming the class {name}"
    return test


def _mentions(text: str):
    def test(value) -> bool:
        return isinstance(value, str) and text in value
    test.__name__ = f"mentioning {text}"
    return test


def _get(driver, path: str, ok: bool) -> None:
    answer = driver.get(path)
    if ok and answer.status_code != 200:
        fail(f"GET {path} to answer 200", f"it answered {answer.status_code}.",
             "run python app.py and open that URL to see what breaks.", details=driver.tail())
    if not ok and answer.status_code < 500:
        fail(f"GET {path} to fail (Redis times out for T13) with a 5xx status",
             f"it answered {answer.status_code}.",
             "keep redis_sim.py as it is: driver T13 is the one that always times out.")
