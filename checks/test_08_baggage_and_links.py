"""Quest 08, baggage and links: a value rides along three services; a queued job links home.

For the baggage check, both hops (frontend -> dispatch -> notifier) go through
relays the check controls, so a failure can say where the baggage header went
missing: that cause is diagnosed before any other. Two customers are sent, so
a value written into the code cannot pass for one read from the baggage.
"""

from urllib.parse import unquote

import pytest

from tracequest.expect import ANY, select
from tracequest.expect.failure import fail

pytestmark = pytest.mark.quest("08")

CUSTOMERS = ("392", "517")
MESSAGES = ("T7", "T9")

ATTACH_HINT = ("baggage.set_baggage(...) only returns a new Context. Make it current with "
               "token = context.attach(ctx) around the call to dispatch, then context.detach(token).")
UNCHANGED_HINT = "dispatch.py and telemetry.py need no changes; undo any change there."
READ_HINT = ("in notify(), read baggage.get_baggage(\"customer.id\") and put it on "
             "trace.get_current_span() with set_attribute(\"customer.id\", ...).")
HARD_CODED_HINT = ("read the value from the baggage with baggage.get_baggage(\"customer.id\"); "
                   "do not hard-code it.")
KEEP_SPANS_HINT = "keep the two spans in publish() and worker(), with their kinds."
CHILD_HINT = ("it became a child of the producer, so the queued job stretches the request's trace "
              "for as long as the message waits: pass the producer's span context as "
              "links=[Link(...)], not as context=.")
OWN_TRACE_HINT = ("the worker's span joined the request's trace: start it with no context=, so it "
                  "begins a trace of its own, and point back with links=[Link(...)] instead.")


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

    requests = select(traces, service="frontend", kind="SERVER").named("frontend's request spans")
    requests.expect_count(exactly=len(CUSTOMERS),
                          hint="telemetry.py sets tracing up for all three services; undo any change there.")
    in_order = sorted(requests.each(), key=lambda r: r.spans[0].start_ns)
    for customer, request, first_hop, second_hop in zip(CUSTOMERS, in_order, to_dispatch.seen,
                                                       to_notifier.seen):
        notified = request.descendants(service="notifier") \
            .named(f"notifier's spans in the trace of customer {customer}'s request")
        notified.expect_count(at_least=1, hint=UNCHANGED_HINT)
        hint = _why_not_recorded(customer, notified, first_hop, second_hop)
        notified.where(attributes={"customer.id": ANY}) \
            .named(f"notifier's spans recording customer.id for customer {customer}") \
            .expect_attribute("customer.id", equals=_text(customer), hint=hint)


def test_the_queued_message_links_back_to_its_producer(run):
    """The worker's CONSUMER span starts a new trace with a link to the PRODUCER span that queued it."""
    notifier = run.app("notifier.py", name="notifier")
    run.start()
    for driver in MESSAGES:
        answer = notifier.get(f"/notify?driver={driver}")
        if answer.status_code != 200:
            fail(f"GET /notify?driver={driver} to answer 200",
                 f"notifier answered {answer.status_code}.",
                 "run python notifier.py and open http://127.0.0.1:5083/notify.",
                 details=notifier.tail())
    run.wait_for_spans(3 * len(MESSAGES))  # per message: the request, the publish, the processing
    traces = run.traces()

    producers = select(traces, kind="PRODUCER").named("the 'outbox publish' PRODUCER spans")
    consumers = select(traces, kind="CONSUMER").named("the 'outbox process' CONSUMER spans")
    producers.expect_count(exactly=len(MESSAGES), hint=KEEP_SPANS_HINT)
    consumers.expect_count(exactly=len(MESSAGES), hint=KEEP_SPANS_HINT)

    # Both directions: linked to the producer, and neither its child nor in its trace.
    consumers.expect_not_child_of(producers, hint=CHILD_HINT)
    consumers.expect_not_in_trace_of(producers, hint=OWN_TRACE_HINT)
    consumers.expect_linked_to(producers, hint=_link_hint(consumers, traces))


def _why_not_recorded(customer: str, notified, first_hop: dict, second_hop: dict) -> str:
    """The most specific reason notifier did not record this customer, from where it went missing."""
    recorded = {str(s.attributes["customer.id"]) for s in notified if "customer.id" in s.attributes}
    sent = _baggage(first_hop)
    if "customer.id" not in sent:
        had = f" (it had: {first_hop['baggage']})" if first_hop.get("baggage") else ""
        none = (" That is why notifier recorded customer.id='None': get_baggage() returned None."
                if "None" in recorded else "")
        return (f"the request frontend sent had no customer.id in its baggage header{had}.{none} "
                + ATTACH_HINT)
    if sent["customer.id"] != customer:
        return (f"frontend sent customer.id={sent['customer.id']} in the baggage of customer "
                f"{customer}'s request: set the baggage from the request's customer, not a fixed value.")
    if "customer.id" not in _baggage(second_hop):
        return ("dispatch received customer.id in its baggage header but did not send it on. "
                + UNCHANGED_HINT)
    if not recorded:
        return (f"the baggage reached notifier (header: {second_hop['baggage']}), but no notifier "
                "span records it. " + READ_HINT)
    return HARD_CODED_HINT


def _baggage(headers: dict) -> dict:
    """The entries of a W3C baggage header: 'customer.id=392,x=y;prop' -> {'customer.id': '392', ...}."""
    entries = {}
    for item in headers.get("baggage", "").split(","):
        key, _, value = item.split(";")[0].partition("=")
        if key.strip():
            entries[unquote(key.strip())] = unquote(value.strip())
    return entries


def _text(customer: str):
    def test(value) -> bool:
        return str(value) == customer
    test.__name__ = f"= {customer!r}"
    return test


def _link_hint(consumers, traces) -> str:
    """Why a consumer has no link to its producer: where its links point, if anywhere."""
    known = {(s.trace_id, s.span_id): s for t in traces for s in t}
    links = [link for span in consumers for link in span.links]
    if any((link.trace_id, link.span_id) in known for link in links):
        return ("the link points at another span: call inject(message[\"headers\"]) inside the "
                "PRODUCER span's `with` block, so the headers name the publish span.")
    if links:
        return ("the link points at a span that does not exist in any trace: build it from the "
                "message, trace.get_current_span(extract(message[\"headers\"])).get_span_context(), "
                "not from a context you make yourself.")
    return ("nothing ties the sent message to the request that queued it. In publish(), "
            "inject(message[\"headers\"]); in worker(), extract them and start the span with "
            "links=[Link(trace.get_current_span(ctx).get_span_context())].")
