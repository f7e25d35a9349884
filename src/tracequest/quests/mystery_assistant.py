"""The verdict on the assistant's half of quest 03: where the assistant's trouble is.

The assistant's traces show one of two troubles, and each has its own sign.
An agent that gives up (its ``invoke_agent`` span ends in error after running
into its iteration cap) has its trouble in the loop itself: that span is the
answer, whichever step inside it took the time. An agent that answers, but
slowly, has it where the time goes: the assistant's operation holding the most
self time, added up over a trace, as in the slow-span half.

Only the assistant's own spans count. Its tools call customer, driver and
route, and whatever is slow there belongs to the slow-span question. Like the
slow span, the verdict comes from the traces alone, never from the culprit
table, so the check and the learner's own reading of the traces agree.
"""

from __future__ import annotations

from tracequest.expect.failure import fail
from tracequest.quests.slow_span import (Operation, ancestor_on_the_way, as_ms, matching_name,
                                         slowest_operation, slowest_overall, typical_ns)
from tracequest.traces.model import Span, Trace

SERVICE = "assistant"
ANSWER_HOW = "tracequest answer assistant <service> <operation>"
EXPECTED = ("your answer to name the assistant's operation its trouble is in: the agent span when "
            "the agent gives up, otherwise the assistant's operation holding the most self time")


def agent_span(trace: Trace) -> Span | None:
    """The assistant's ``invoke_agent`` span: the whole agent loop of one question."""
    return next((s for s in trace if s.service == SERVICE
                 and s.attributes.get("gen_ai.operation.name") == "invoke_agent"), None)


def gave_up(trace: Trace) -> bool:
    agent = agent_span(trace)
    return agent is not None and agent.is_error


def most_gave_up(traces: list[Trace]) -> bool:
    return sum(1 for t in traces if gave_up(t)) > len(traces) / 2


def culprit(traces: list[Trace]) -> Operation:
    """The agent span when most agents gave up; else the operation most traces find slowest."""
    if most_gave_up(traces):
        return SERVICE, next(agent_span(t) for t in traces if gave_up(t)).name
    return slowest_overall(traces, SERVICE)


def judge(traces: list[Trace], service: str, operation: str) -> None:
    """Pass if the answer names the assistant's trouble; otherwise fail with the hint that fits."""
    wanted = culprit(traces)
    answered = _known_operation(traces, service, operation)
    if answered == wanted:
        return
    if most_gave_up(traces):
        _fail_gave_up(traces, answered, wanted)
    witness = next(t for t in traces if slowest_operation(t, SERVICE) == wanted)
    above = ancestor_on_the_way(witness, answered, wanted)
    if above is not None:
        span, child = above
        fail(EXPECTED,
             f"'{span.name}' ({span.service}) lasts {as_ms(span.duration_ns)} but holds only "
             f"{as_ms(witness.self_time_ns(span))} of its own: it is slow only because of "
             f"'{child.name}' under it.",
             "look at self time, not duration: follow the time down the assistant's spans to the "
             "one that spends it itself (the model server has no spans of its own: its time is "
             "the self time of the span that called it).")
    fail(EXPECTED,
         f"'{answered[1]}' ({SERVICE}) holds {as_ms(typical_ns(traces, answered))} of its own in a "
         f"typical trace; the assistant's slowest operation holds {as_ms(typical_ns(traces, wanted))}.",
         "compare self time, and add up a span that repeats: each question makes several model "
         "calls and several tool calls.")


def _known_operation(traces: list[Trace], service: str, operation: str) -> Operation:
    """The assistant operation the answer means, forgiving case and spacing; or fail."""
    services = sorted({s.service for t in traces for s in t})
    found = matching_name(service, services)
    if found is None:
        fail(EXPECTED,
             f"you answered service '{service}', but no service of that name sent spans for the "
             f"questions to the assistant. The services are: {', '.join(services)}.",
             f"give the service name first, then the span name: {ANSWER_HOW}.")
    if found != SERVICE:
        fail(EXPECTED,
             f"'{operation}' in {found} is not the assistant's own: the assistant's tools call "
             f"{found}, and time spent there belongs to the slow-span question.",
             f"look at the spans of the service {SERVICE}: its agent span, its iterations, its "
             f"model calls and its tool calls. Answer with {ANSWER_HOW}.")
    names = list(dict.fromkeys(s.name for t in traces for s in t if s.service == SERVICE))
    name = matching_name(operation, names)
    if name is None:
        listed = ", ".join(f"'{n}'" for n in names)
        fail(EXPECTED,
             f"{SERVICE} has no span called '{operation}'. Its spans are: {listed}.",
             f"copy the span name exactly as the trace shows it (no quotes needed): {ANSWER_HOW}.")
    return SERVICE, name


def _fail_gave_up(traces: list[Trace], answered: Operation, wanted: Operation) -> None:
    quitters = [t for t in traces if gave_up(t)]
    agent = agent_span(quitters[0])
    iterations = agent.attributes.get("agent.iterations", "?")
    reason = agent.attributes.get("error.type") or agent.status_message or "an error"
    inside = any(_is_under(span, agent) for t in quitters for span in t.find(name=answered[1], service=SERVICE))
    where = "is one step inside that loop" if inside else "only waits for it"
    fail(EXPECTED,
         f"in {len(quitters)} of {len(traces)} traces the agent span '{wanted[1]}' ends in error "
         f"after {iterations} iterations ({reason}): the agent gave up without an answer. "
         f"'{answered[1]}' {where}.",
         "when an agent never finishes, its trouble is the loop itself, not one step of it: "
         "count the iterations, read how the agent span ends, and name that span.")


def _is_under(span: Span, ancestor: Span) -> bool:
    parent = span.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False

