"""Quest 10, three broken services: every basket is one whole trace again.

A basket request to the shop must leave one trace holding the shop's SERVER
span, one CLIENT call per item under it (made in parallel, in the thread
pool), and the prices service's SERVER span under each call. Each of the
three bugs breaks one part of that shape; each wrong fix (no pool, a fixed
parent, a header without a CLIENT span, an endpoint written into the code)
breaks another.
"""

import pytest

from tracequest.expect import select
from tracequest.expect.failure import fail

pytestmark = pytest.mark.quest("10")

BASKETS = ("tea,milk,bread", "coffee,sugar,tea")
ITEMS = sum(len(b.split(",")) for b in BASKETS)

REQUESTS_HINT = ("the shop's calls to prices make no CLIENT span, and nothing joins them to the request: "
                 "requests is not instrumented. Call RequestsInstrumentor().instrument() once at start-up, "
                 "next to FlaskInstrumentor (it opens the CLIENT span and writes traceparent for you).")
THREAD_HINT = ("a thread pool's task runs with an empty context, so its CLIENT span starts a trace of its "
               "own. Submit each task in a copy of the request's context: "
               "pool.submit(contextvars.copy_context().run, price_of, item).")
FIXED_PARENT_HINT = ("the calls hang under one fixed span instead of their own request. Carry each "
                     "request's context into its tasks (contextvars.copy_context().run); build no parent "
                     "by hand.")
POOL_HINT = ("the price calls ran one after another. Keep the thread pool, and carry the context into it "
             "instead of calling from the request's thread.")
PRICES_HINT = ("no span of prices arrived: its exporter does not send where the environment says. The "
               "starter sends OTLP over HTTP to the endpoint of OTLP/gRPC. Use the shared "
               "telemetry.setup_tracing('prices'), whose gRPC exporter reads OTEL_EXPORTER_OTLP_ENDPOINT, "
               "and write no endpoint into the code (the check, the lab and Docker each set their own). "
               "`tracequest doctor --run 'python prices.py' --request URL` shows it.")


def test_each_basket_is_one_whole_trace(run):
    # A refused export gives up after 2 s, so a stop never waits on retries.
    prices = run.app("prices.py", name="prices", env={"OTEL_EXPORTER_OTLP_TIMEOUT": "2"})
    shop = run.app("shop.py", name="shop", env={"PRICES_URL": prices.url})
    run.start()
    for items in BASKETS:
        answer = shop.get(f"/basket?items={items}")
        if answer.status_code != 200:
            fail(f"GET /basket?items={items} to answer 200", f"shop answered {answer.status_code}.",
                 "run both services yourself (python prices.py, then python shop.py) and open "
                 "http://127.0.0.1:5101/basket?items=tea,milk.", details=shop.tail())
    traces = run.traces()

    baskets = select(traces, service="shop", kind="SERVER").named("shop's GET /basket spans")
    baskets.expect_count(exactly=len(BASKETS), hint="keep the shop's Flask instrumentation, as given.")
    calls = select(traces, service="shop", kind="CLIENT").named("shop's calls to prices")
    calls.expect_count(exactly=ITEMS, hint=REQUESTS_HINT)
    calls.expect_child_of(baskets, hint=_why_not_children(calls))
    baskets.expect_separate_traces(hint=FIXED_PARENT_HINT)
    for basket in baskets.each():
        one_basket = basket.children(kind="CLIENT").named("one basket's calls to prices")
        one_basket.expect_count(exactly=3, hint=FIXED_PARENT_HINT)
        _expect_parallel(one_basket)

    served = select(traces, service="prices", kind="SERVER").named("prices' GET /price spans")
    served.expect_count(exactly=ITEMS, hint=PRICES_HINT)
    served.expect_child_of(calls, hint="keep prices instrumented with FlaskInstrumentor, as given.")


def _why_not_children(calls) -> str:
    """A fixed parent shared by every call, or the empty context of a pool thread."""
    parents = {span.parent_id for span in calls}
    if len(parents) == 1 and None not in parents and "" not in parents:
        return FIXED_PARENT_HINT
    return THREAD_HINT


def _expect_parallel(one_basket) -> None:
    """The calls of one basket overlap in time: the thread pool is still there."""
    spans = sorted(one_basket, key=lambda s: s.start_ns)
    if not any(later.start_ns < earlier.end_ns for earlier, later in zip(spans, spans[1:])):
        fail("the calls of one basket to run at the same time, in the thread pool",
             f"its {len(spans)} calls ran one after another.", POOL_HINT)
