"""How spans relate: walking parent, child and link edges, and asserting on them.

A span's own properties (its count, attributes, duration, status, events) are
checked by :class:`~tracequest.expect.selection.Selection` itself; what holds
between spans (one sits under another, links to another, shares or does not
share its trace, runs at the same moment) is checked here, in
:class:`RelationAssertions`, which Selection inherits. The walks
(:func:`descendants_of`, :func:`ancestors_of`, :func:`links_into`) serve both
the relation assertions and Selection's own ``descendants()``,
``ancestors()`` and ``linked_to()``.
"""

from __future__ import annotations

from tracequest.expect.matching import SHOWN, listed, plural, some_of, span_label
from tracequest.traces.model import Span


def descendants_of(span: Span) -> list[Span]:
    """Children, their children and so on, depth first."""
    found, stack = [], list(reversed(span.children))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(reversed(child.children))
    return found


def ancestors_of(span: Span) -> list[Span]:
    """Parent, grandparent and so on up to the root (stopping should the parents loop)."""
    found, at = [], span.parent
    while at is not None and at not in found:
        found.append(at)
        at = at.parent
    return found


def links_into(span: Span, targets: set[tuple[str, str]]) -> bool:
    """Whether one of the span's links points at one of these (trace id, span id)s."""
    return any((link.trace_id, link.span_id) in targets for link in span.links)


class RelationAssertions:
    """The assertions of :class:`~tracequest.expect.selection.Selection` about how its spans relate.

    Only ever a base of Selection, whose ``label``, ``traces``, ``_world``,
    ``_ids``, ``_every``, ``_none``, ``_need_spans`` and ``_fail`` these use.
    """

    def expect_descendant_of(self, ancestor: RelationAssertions, hint: str = "") -> RelationAssertions:
        """Every selected span sits under a span of ``ancestor``: its child, grandchild, and so on."""
        self._need_spans(f"an ancestor among {ancestor.label}", hint)
        ids = ancestor._ids()
        off = [s for s in self if not any((a.trace_id, a.span_id) in ids for a in ancestors_of(s))]
        if off:
            self._fail(f"{self._every()} to sit inside {ancestor.label}",
                       f"{some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: "
                       + "; ".join(_whose_parent(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_child_of(self, parent: RelationAssertions, hint: str = "") -> RelationAssertions:
        """Every selected span's parent is a span of ``parent``."""
        self._need_spans(f"a parent among {parent.label}", hint)
        ids = parent._ids()
        off = [s for s in self if (s.trace_id, s.parent_id) not in ids]
        if off:
            self._fail(f"{self._every()} to be a child of {parent.label}",
                       f"{some_of(off, len(self))} {'is' if len(off) == 1 else 'are'} not: "
                       + "; ".join(_whose_parent(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_not_child_of(self, parent: RelationAssertions, hint: str = "") -> RelationAssertions:
        """No selected span's parent is a span of ``parent``."""
        self._need_spans(f"no parent among {parent.label}", hint)
        ids = parent._ids()
        off = [s for s in self if (s.trace_id, s.parent_id) in ids]
        if off:
            self._fail(self._none(f"be a child of {parent.label}"),
                       f"{some_of(off, len(self))} {'is' if len(off) == 1 else 'are'}: "
                       + "; ".join(_whose_parent(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_linked_to(self, other: RelationAssertions, hint: str = "") -> RelationAssertions:
        """Every selected span carries a Link to a span of ``other``."""
        self._need_spans(f"a link to {other.label}", hint)
        targets = other._ids()
        off = [s for s in self if not links_into(s, targets)]
        if off:
            self._fail(f"{self._every()} to carry a link to {other.label}",
                       f"{some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: "
                       + "; ".join(self._links_text(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_not_linked_to(self, other: RelationAssertions, hint: str = "") -> RelationAssertions:
        """No selected span carries a Link to a span of ``other``."""
        self._need_spans(f"no link to {other.label}", hint)
        targets = other._ids()
        off = [s for s in self if links_into(s, targets)]
        if off:
            self._fail(self._none(f"carry a link to {other.label}"),
                       f"{some_of(off, len(self))} {'does' if len(off) == 1 else 'do'}: {listed(off)}.",
                       hint, off)
        return self

    def expect_one_trace(self, hint: str = "") -> RelationAssertions:
        """All selected spans share one trace id."""
        self._need_spans("one trace", hint)
        traces = self.traces
        if len(traces) > 1:
            where = "; ".join(f"{listed([s for s in self if s.trace_id == t.trace_id])} "
                              f"in trace {t.trace_id}" for t in traces[:SHOWN])
            self._fail(f"{self.label} to share one trace",
                       f"they are spread over {len(traces)} traces: {where}.", hint,
                       [next(iter(self))])
        return self

    def expect_concurrency(self, at_most: int, hint: str = "") -> RelationAssertions:
        """In no trace do more than ``at_most`` selected spans run at the same moment."""
        self._need_spans(f"at most {at_most} at a time", hint)
        worst, worst_spans = 0, []
        for trace in self.traces:
            spans = [s for s in self if s.trace_id == trace.trace_id]
            peak, at = _peak_overlap(spans)
            if peak > worst:
                worst, worst_spans = peak, at
        if worst > at_most:
            self._fail(f"at most {at_most} of {self.label} running at the same time",
                       f"{worst} ran at once: {listed(worst_spans)}.", hint, worst_spans)
        return self

    def expect_separate_traces(self, hint: str = "") -> RelationAssertions:
        """Every selected span is in a trace no other selected span is in."""
        self._need_spans("a trace each", hint)
        traces = self.traces
        if len(traces) < len(self):
            shared = next(t for t in traces if sum(s.trace_id == t.trace_id for s in self) > 1)
            together = [s for s in self if s.trace_id == shared.trace_id]
            self._fail(f"each of {self.label} in a trace of its own",
                       f"the {len(self)} spans share {plural(len(traces), 'trace')}: "
                       f"{listed(together)} are all in trace {shared.trace_id}.", hint, together)
        return self

    def expect_in_trace_of(self, other: RelationAssertions, hint: str = "") -> RelationAssertions:
        """Every selected span is in a trace that holds a span of ``other``."""
        self._need_spans(f"the trace of {other.label}", hint)
        theirs = {s.trace_id for s in other}
        off = [s for s in self if s.trace_id not in theirs]
        if off:
            self._fail(f"{self._every()} to be in the same trace as {other.label}",
                       f"{some_of(off, len(self))} {'is' if len(off) == 1 else 'are'} in another "
                       f"trace: {listed(off)}.", hint, off)
        return self

    def expect_not_in_trace_of(self, other: RelationAssertions, hint: str = "") -> RelationAssertions:
        """No selected span shares a trace with a span of ``other``."""
        self._need_spans(f"a trace apart from {other.label}", hint)
        theirs = {s.trace_id for s in other}
        off = [s for s in self if s.trace_id in theirs]
        if off:
            self._fail(self._none(f"be in a trace of {other.label}"),
                       f"{some_of(off, len(self))} {'is' if len(off) == 1 else 'are'} in one: "
                       f"{listed(off)}.", hint, off)
        return self

    def _links_text(self, span: Span) -> str:
        """What a span's links point at, by name where the traces given hold the target."""
        if not span.links:
            return f"'{span.name}' has no links"
        known = {(s.trace_id, s.span_id): s for t in self._world for s in t}
        shown = ", ".join(span_label(known[(l.trace_id, l.span_id)]) if (l.trace_id, l.span_id) in known
                          else f"span {l.span_id} of trace {l.trace_id}, which no trace here holds"
                          for l in span.links[:SHOWN])
        return f"'{span.name}' links to {shown}"


def _whose_parent(span: Span) -> str:
    if span.parent is not None:
        return f"'{span.name}' hangs under {span_label(span.parent)}"
    if span.parent_id:
        return f"'{span.name}' hangs under span {span.parent_id}, which its trace does not hold"
    return f"'{span.name}' is the root of a trace of its own"


def _peak_overlap(spans: list[Span]) -> tuple[int, list[Span]]:
    """Most spans running at one instant, and which; an end at t comes before a start at t."""
    points = sorted([(s.start_ns, 1, i) for i, s in enumerate(spans)]
                    + [(s.end_ns, 0, i) for i, s in enumerate(spans)])
    running: set[int] = set()
    peak, at = 0, []
    for _, is_start, i in points:
        if is_start:
            running.add(i)
            if len(running) > peak:
                peak, at = len(running), [spans[j] for j in sorted(running)]
        else:
            running.discard(i)
    return peak, at
