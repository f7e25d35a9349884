"""Quest 08, baggage and links: a value rides along three services; a queued job links home.

For the baggage check, both hops (frontend -> dispatch -> notifier) go through
relays the check controls, so a failure can say where the baggage header went
missing.
"""

import pytest

from tracequest.quests.describe import span_label, spans_of, trace_of
from tracequest.quests.failure import fail

pytestmark = pytest.mark.quest("08")

CUSTOMERS = ("392", "517")


def test_baggage_carries_the_customer_to_the_third_service(run):
    """The customer id set in frontend's baggage is on a notifier span, two services later."""
    notifier = run.app("notifier.py", name="notifier")
    to_notifier = run.relay(notifier)
    dispatch = run.app("dispatch.py", name="dispatch", env={"NOTIFIER_URL": to_notifier.url})
    to_dispatch = run.relay(dispatch)
    frontend = run.app("frontend.py", name="frontend", env={"DISPATCH_URL": to_dispatch.url})
    run.start()
    for customer in CUSTOMERS:
        answer = frontend.get(f"/dispatch?customer={customer}")
        if answer.status_code != 200:
            fail(f"GET /dispatch?customer={customer} to answer 200",
                 f"frontend answered {answer.status_code}.",
                 "start notifier.py, dispatch.py and frontend.py yourself and open "
                 "http://127.0.0.1:5081/dispatch?customer=392.", details=frontend.tail())
    traces = run.traces()

    roots = sorted((s for s in spans_of(traces) if s.service == "frontend" and s.kind == "SERVER"),
                   key=lambda s: s.start_ns)
    if len(roots) != len(CUSTOMERS):
        fail(f"a trace for each of the {len(CUSTOMERS)} requests, starting in frontend",
             f"the backend got {len(roots)} SERVER spans from frontend.",
             "telemetry.py sets tracing up for all three services; undo any change there.")
    for customer, root, first_hop, second_hop in zip(CUSTOMERS, roots, to_dispatch.seen, to_notifier.seen):
        trace = trace_of(traces, root)
        notified = trace.find(service="notifier")
        if not notified:
            fail("notifier's spans in the same trace as frontend's request",
                 "the trace holds no notifier span.",
                 "telemetry.py instruments Flask and requests so the context travels by itself; "
                 "undo any change there.", trace=trace)
        values = {s.attributes["customer.id"] for s in notified if "customer.id" in s.attributes}
        if str(customer) in {str(v) for v in values}:
            continue
        if values:
            fail(f"customer.id={customer} on a notifier span, for the request of customer {customer}",
                 f"notifier's span says customer.id={sorted(values)[0]}.",
                 "read the value from the baggage with baggage.get_baggage(\"customer.id\"); "
                 "do not hard-code it.", trace=trace)
        if "customer.id" not in first_hop.get("baggage", ""):
            fail("frontend's call to dispatch to carry the baggage header customer.id="
                 f"{customer}",
                 "the request frontend sent had no customer.id in its baggage header"
                 f"{' (it had: ' + first_hop['baggage'] + ')' if first_hop.get('baggage') else ''}.",
                 "baggage.set_baggage(...) only returns a new Context. Make it current with "
                 "token = context.attach(ctx) around the call to dispatch, then "
                 "context.detach(token).", trace=trace)
        if "customer.id" not in second_hop.get("baggage", ""):
            fail("dispatch to pass the baggage on to notifier",
                 "dispatch received customer.id in its baggage header but did not send it on.",
                 "dispatch.py and telemetry.py need no changes; undo any change there.", trace=trace)
        fail(f"a notifier span with the attribute customer.id={customer}",
             f"the baggage reached notifier (header: {second_hop['baggage']}), but no notifier "
             f"span records it: {', '.join(span_label(s) for s in notified)}.",
             "in notify(), read baggage.get_baggage(\"customer.id\") and put it on "
             "trace.get_current_span() with set_attribute(\"customer.id\", ...).", trace=trace)


def test_the_queued_message_links_back_to_its_producer(run):
    """The worker's CONSUMER span starts a new trace with a link to the PRODUCER span that queued it."""
    notifier = run.app("notifier.py", name="notifier")
    run.start()
    for driver in ("T7", "T9"):
        answer = notifier.get(f"/notify?driver={driver}")
        if answer.status_code != 200:
            fail(f"GET /notify?driver={driver} to answer 200",
                 f"notifier answered {answer.status_code}.",
                 "run python notifier.py and open http://127.0.0.1:5083/notify.",
                 details=notifier.tail())
    run.wait_for_spans(6)  # per message: the request, the publish, the processing
    traces = run.traces()
    spans = spans_of(traces)

    producers = sorted((s for s in spans if s.kind == "PRODUCER"), key=lambda s: s.start_ns)
    consumers = sorted((s for s in spans if s.kind == "CONSUMER"), key=lambda s: s.start_ns)
    if len(producers) != 2 or len(consumers) != 2:
        fail("a PRODUCER span ('outbox publish') and a CONSUMER span ('outbox process') per message",
             f"the backend got {len(producers)} PRODUCER and {len(consumers)} CONSUMER spans.",
             "keep the two spans in publish() and worker(), with their kinds.")

    by_id = {(s.trace_id, s.span_id): s for s in spans}
    for producer, consumer in zip(producers, consumers):
        linked = [by_id.get((link.trace_id, link.span_id)) for link in consumer.links]
        if producer in linked:
            continue
        trace = trace_of(traces, consumer)
        if any(linked):
            other = next(s for s in linked if s)
            fail(f"{span_label(consumer)} to link to the span that queued the message, "
                 f"{span_label(producer)}",
                 f"it links to {span_label(other)} instead.",
                 "call inject(message[\"headers\"]) inside the PRODUCER span's `with` block, so "
                 "the headers name the publish span.", trace=trace)
        if consumer.links:
            fail(f"a link from {span_label(consumer)} to {span_label(producer)}",
                 "its link points at a span that does not exist in any trace.",
                 "build the link from the message: trace.get_current_span(extract(message"
                 "[\"headers\"])).get_span_context(), not from a context you make yourself.",
                 trace=trace)
        if consumer.parent_id == producer.span_id:
            fail(f"{span_label(consumer)} in a trace of its own, linked to the producer",
                 "it became a child of the producer instead, so the queued job stretches the "
                 "request's trace for as long as the message waits.",
                 "pass the producer's span context as links=[Link(...)], not as context=.",
                 trace=trace)
        fail(f"a link from {span_label(consumer)} to {span_label(producer)}",
             "the consumer span has no links: nothing ties the sent message to the request "
             "that queued it.",
             "in publish(), inject(message[\"headers\"]); in worker(), extract them and start the "
             "span with links=[Link(trace.get_current_span(ctx).get_span_context())].",
             trace=trace)
