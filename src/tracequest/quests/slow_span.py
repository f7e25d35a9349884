"""The verdict of quest 03: which span holds the time, and what to tell a wrong answer.

"Slow" means self time: what a span spends on its own, not waiting for its
children. Spans with the same service and name are added up within a trace,
because ten GetDriver reads of 80 ms cost as much as one read of 800 ms, and
a learner answers with an operation, not with one span. Each trace then votes
for its slowest operation and the most votes win, so one odd trace (say the
first request, which found no queue) cannot decide the answer.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from tracequest.expect.failure import fail
from tracequest.traces.model import Span, Trace

Operation = tuple[str, str]  # (service, span name)

EXPECTED = ("your answer to name the operation (service and span name) that holds the most "
            "self time in the mystery's traces")
ANSWER_HOW = "tracequest answer slow-span <service> <operation>"


def self_time_by_operation(trace: Trace) -> dict[Operation, int]:
    """Nanoseconds of self time per (service, span name), added up over one trace."""
    totals: dict[Operation, int] = defaultdict(int)
    for span in trace:
        totals[(span.service, span.name)] += trace.self_time_ns(span)
    return dict(totals)


def slowest_operation(trace: Trace, service: str | None = None) -> Operation:
    """The operation holding the most self time in a trace; of one service's, when given."""
    totals = {op: ns for op, ns in self_time_by_operation(trace).items()
              if service is None or op[0] == service}
    return max(totals, key=lambda op: (totals[op], op))


def slowest_overall(traces: list[Trace], service: str | None = None) -> Operation:
    """The operation most traces name as their slowest; a tie goes to the most self time."""
    votes = Counter(slowest_operation(t, service) for t in traces)
    return max(votes, key=lambda op: (votes[op], typical_ns(traces, op)))


def judge(traces: list[Trace], service: str, operation: str) -> None:
    """Pass if the answer names the slowest operation; otherwise fail with the hint that fits."""
    culprit = slowest_overall(traces)
    answered = _known_operation(traces, service, operation)
    if answered == culprit:
        return
    witness = next(t for t in traces if slowest_operation(t) == culprit)
    above = ancestor_on_the_way(witness, answered, culprit)
    if above is not None:
        _fail_ancestor(witness, *above)
    _fail_little_self_time(traces, answered, culprit)


def _known_operation(traces: list[Trace], service: str, operation: str) -> Operation:
    """The (service, span name) the answer means, forgiving case and spacing; or fail."""
    services = sorted({s.service for t in traces for s in t})
    found = matching_name(service, services)
    if found is None:
        fail(EXPECTED,
             f"you answered service '{service}', but no service of that name sent spans. "
             f"The services are: {', '.join(services)}.",
             f"give the service name first, then the span name: {ANSWER_HOW}.")
    names = list(dict.fromkeys(s.name for t in traces for s in t if s.service == found))
    name = matching_name(operation, names)
    if name is None:
        listed = ", ".join(f"'{n}'" for n in names)
        fail(EXPECTED,
             f"{found} has no span called '{operation}'. Its spans are: {listed}."
             + _elsewhere(traces, operation),
             "copy the span name exactly as the trace shows it (no quotes needed around "
             f"names with spaces): {ANSWER_HOW}.")
    return found, name


def _elsewhere(traces: list[Trace], operation: str) -> str:
    """Which other services have a span of that name: the answer may name the wrong service."""
    owners = sorted({s.service for t in traces for s in t if _normal(s.name) == _normal(operation)})
    return f" Spans of that name come from {' and '.join(owners)}." if owners else ""


def matching_name(text: str, choices: list[str]) -> str | None:
    """The choice that reads as ``text``, forgiving case, spacing and quotes; None if none does."""
    wanted = _normal(text)
    return next((choice for choice in choices if _normal(choice) == wanted), None)


def _normal(text: str) -> str:
    return " ".join(text.strip().strip("'\"").split()).casefold()


def ancestor_on_the_way(trace: Trace, answered: Operation,
                        culprit: Operation) -> tuple[Span, Span] | None:
    """A span of the answered operation above a culprit span, and its child on the way down."""
    culprits = sorted(trace.find(name=culprit[1], service=culprit[0]),
                      key=trace.self_time_ns, reverse=True)
    for span in culprits:
        child, parent = span, span.parent
        while parent is not None:
            if (parent.service, parent.name) == answered:
                return parent, child
            child, parent = parent, parent.parent
    return None


def _fail_ancestor(trace: Trace, span: Span, child: Span) -> None:
    fail(EXPECTED,
         f"'{span.name}' ({span.service}) lasts {as_ms(span.duration_ns)} but holds only "
         f"{as_ms(trace.self_time_ns(span))} of its own: it is slow only because its child "
         f"'{child.name}' ({child.service}) is slow.",
         "look at self time, not duration: a span that waits for its children is slow only "
         "because they are. Follow the time down to the span that spends it itself.")


def _fail_little_self_time(traces: list[Trace], answered: Operation, culprit: Operation) -> None:
    service, name = answered
    fail(EXPECTED,
         f"'{name}' ({service}) holds {as_ms(typical_ns(traces, answered))} of its own in a "
         f"typical trace; the slowest operation holds {as_ms(typical_ns(traces, culprit))}.",
         "compare self time, not duration, and add up a span that repeats: ten reads of "
         "50 ms hold 500 ms together. Time spent waiting without a child span (for a lock, "
         "a queue) is self time too.")


def typical_ns(traces: list[Trace], op: Operation) -> float:
    """The median over traces of an operation's self time (0 where it is missing)."""
    return statistics.median(self_time_by_operation(t).get(op, 0) for t in traces)


def as_ms(ns: float) -> str:
    """Nanoseconds as whole milliseconds: '812 ms'."""
    return f"{ns / 1e6:.0f} ms"
