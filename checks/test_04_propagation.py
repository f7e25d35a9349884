"""Quest 04, carry the context: frontend and pricing share one trace per request.

The call from frontend to pricing goes through a relay the check controls. It
watches the headers go by; for the last requests it removes ``traceparent``,
and then the two services must fall apart into separate traces again. That
proves the header is what joins them, not a fixed id or some side channel.
"""

import time

import pytest

from tracequest.quests.describe import span_label, spans_of, trace_of
from tracequest.quests.failure import fail

pytestmark = pytest.mark.quest("04")

JOINED = 3     # requests whose traceparent reaches pricing
STRIPPED = 2   # requests whose traceparent the relay removes
LOST = "service 'pricing' started a new trace: context was lost between frontend → pricing."


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
    spans = spans_of(traces)

    calls = sorted((s for s in spans if s.service == "frontend" and s.kind == "CLIENT"),
                   key=lambda s: s.start_ns)
    served = sorted((s for s in spans if s.service == "pricing" and s.kind == "SERVER"),
                    key=lambda s: s.start_ns)
    if len(calls) != JOINED + STRIPPED or len(served) != JOINED + STRIPPED:
        fail(f"one CLIENT span in frontend and one SERVER span in pricing per request "
             f"({JOINED + STRIPPED} requests)",
             f"frontend sent {len(calls)} CLIENT spans and pricing {len(served)} SERVER spans.",
             "keep the spans the starter code opens: the CLIENT span in ask_pricing() and the "
             "SERVER span in PriceHandler.do_GET().")

    joined = [(c, s, h) for c, s, h in zip(calls, served, relay.seen) if c.start_ns < boundary]
    requests = {c.trace_id for c, _, _ in joined}
    if len(requests) < len(joined):
        fail(f"a trace of its own for each of the {len(joined)} requests",
             f"the {len(joined)} requests share {len(requests)} trace id(s): an id is fixed somewhere.",
             "let the SDK create ids; build no SpanContext or traceparent by hand.")
    for call, server, headers in joined:
        _check_joined(traces, call, server, headers)

    stripped = [(c, s) for c, s in zip(calls, served) if c.start_ns >= boundary]
    for call, server in stripped:
        if server.trace_id == call.trace_id:
            fail("pricing to start a new trace once the relay removes the traceparent header",
                 "pricing's span still joined frontend's trace: the context reached it some "
                 "other way than the traceparent header.",
                 "use the propagation API on both sides: inject(headers) writes traceparent, "
                 "extract(self.headers) reads it. Hand-made headers are not understood by "
                 "other services, proxies or backends.",
                 trace=trace_of(traces, call))


def _quote(frontend, km: int) -> None:
    answer = frontend.get(f"/quote?km={km}")
    if answer.status_code != 200:
        fail(f"GET /quote?km={km} to answer 200", f"frontend answered {answer.status_code}.",
             "run both services yourself (python pricing.py, then python frontend.py) "
             "and open http://127.0.0.1:5041/quote?km=1.",
             details=frontend.tail())


def _check_joined(traces, call, server, headers) -> None:
    """One request with its traceparent intact: pricing must hang under frontend's call."""
    trace = trace_of(traces, call)
    if server.trace_id == call.trace_id:
        if server.parent_id != call.span_id:
            under = span_label(server.parent) if server.parent else "a span the trace does not hold"
            fail(f"pricing's SERVER span to be a child of frontend's CLIENT span {span_label(call)}",
                 f"it hangs under {under} instead.",
                 "call inject(headers) inside the `with` block of the CLIENT span, so the "
                 "traceparent names the call itself.",
                 trace=trace)
        return
    sent = headers.get("traceparent")
    if not sent:
        fail("one trace holding frontend and pricing, pricing's SERVER span a child of "
             "frontend's CLIENT span",
             LOST + " frontend's call carried no traceparent header.",
             "in ask_pricing(), inside the CLIENT span, call inject(headers) before sending the "
             "request; it writes the current context into the headers.",
             trace=trace)
    sent_trace = sent.split("-")[1] if sent.count("-") == 3 else sent
    if sent_trace != call.trace_id:
        fail("the traceparent frontend sends to carry frontend's own trace",
             f"frontend sent traceparent {sent!r}, but its request is in trace {call.trace_id}.",
             "do not write the header yourself: inject(headers) fills it in from the current span.",
             trace=trace)
    fail("one trace holding frontend and pricing, pricing's SERVER span a child of "
         "frontend's CLIENT span",
         LOST + " frontend sent the right traceparent header, but pricing's span ignored it.",
         "in PriceHandler.do_GET(), read the caller's context with extract(self.headers) and "
         "open the SERVER span with context=<that context>.",
         trace=trace)
