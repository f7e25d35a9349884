"""Quest 04, carry the context: frontend and pricing share one trace per request.

The call from frontend to pricing goes through a relay the check controls. It
watches the headers go by; for the last requests it removes ``traceparent``,
and then the two services must fall apart into separate traces again. That
proves the header is what joins them, not a fixed id or some side channel.
"""

import time

import pytest

from tracequest.expect import select
from tracequest.expect.failure import fail

pytestmark = pytest.mark.quest("04")

JOINED = 3     # requests whose traceparent reaches pricing
STRIPPED = 2   # requests whose traceparent the relay removes
LOST = "context was lost between frontend → pricing:"

KEEP_HINT = ("keep the spans the starter code opens: the CLIENT span in ask_pricing() and the "
             "SERVER span in PriceHandler.do_GET().")
OWN_IDS_HINT = "let the SDK create ids; build no SpanContext or traceparent by hand."
INSIDE_HINT = ("call inject(headers) inside the `with` block of the CLIENT span, so the "
               "traceparent names the call itself.")
SIDE_CHANNEL_HINT = ("the relay removes the traceparent header for these requests, yet the context "
                     "reached pricing some other way. Use the propagation API on both sides: "
                     "inject(headers) writes traceparent, extract(self.headers) reads it. Hand-made "
                     "headers are not understood by other services, proxies or backends.")


def test_one_trace_spans_both_services(run):
    """Each request is one trace: pricing's SERVER span is a child of frontend's CLIENT span."""
    pricing = run.app("pricing.py", name="pricing")
    relay = run.relay(pricing)
    frontend = run.app("frontend.py", name="frontend", env={"PRICING_URL": relay.url})
    run.start()
    for km in range(1, JOINED + 1):
        _quote(frontend, km)
    boundary = time.time_ns()
    relay.strip = {"traceparent", "tracestate"}
    for km in range(1, STRIPPED + 1):
        _quote(frontend, km)
    traces = run.traces()

    calls = select(traces, service="frontend", kind="CLIENT").named("frontend's CLIENT spans")
    served = select(traces, service="pricing", kind="SERVER").named("pricing's SERVER spans")
    calls.expect_count(exactly=JOINED + STRIPPED, hint=KEEP_HINT)
    served.expect_count(exactly=JOINED + STRIPPED, hint=KEEP_HINT)

    calls.matching(lambda s: s.start_ns < boundary, "traceparent intact") \
        .named("frontend's CLIENT spans of the requests with traceparent intact") \
        .expect_separate_traces(hint=OWN_IDS_HINT)

    pairs = zip(_in_order(calls), _in_order(served), relay.seen)
    for call, server, headers in pairs:
        if call.spans[0].start_ns < boundary:
            server.expect_child_of(call, hint=_why_apart(call, server, headers))
        else:
            server.named("pricing's SERVER span of a request whose traceparent the relay removed") \
                .expect_not_in_trace_of(call, hint=SIDE_CHANNEL_HINT)


def _in_order(selection):
    """One selection per span, in the order the requests were sent."""
    return sorted(selection.each(), key=lambda one: one.spans[0].start_ns)


def _why_apart(call, server, headers) -> str:
    """The hint for a pricing span that is not the call's child: the most specific cause first."""
    call_span, server_span = call.spans[0], server.spans[0]
    if server_span.trace_id == call_span.trace_id:
        return INSIDE_HINT
    sent = headers.get("traceparent")
    if not sent:
        return (f"{LOST} frontend's call carried no traceparent header. In ask_pricing(), inside "
                "the CLIENT span, call inject(headers) before sending the request; it writes the "
                "current context into the headers.")
    sent_trace = sent.split("-")[1] if sent.count("-") == 3 else sent
    if sent_trace != call_span.trace_id:
        return (f"frontend sent traceparent {sent!r}, but its request is in trace "
                f"{call_span.trace_id}: do not write the header yourself; inject(headers) fills it "
                "in from the current span.")
    return (f"{LOST} frontend sent the right traceparent header, but pricing's span ignored it. "
            "In PriceHandler.do_GET(), read the caller's context with extract(self.headers) and "
            "open the SERVER span with context=<that context>.")


def _quote(frontend, km: int) -> None:
    answer = frontend.get(f"/quote?km={km}")
    if answer.status_code != 200:
        fail(f"GET /quote?km={km} to answer 200", f"frontend answered {answer.status_code}.",
             "run both services yourself (python pricing.py, then python frontend.py) "
             "and open http://127.0.0.1:5041/quote?km=1.",
             details=frontend.tail())
