"""Assertions on traces that read like the property they prove.

Select spans the way Tracetest's selectors and TraceQL's span sets do (by
service, name, kind, status and attributes, then along parent, child,
descendant, ancestor and link relations), and assert on what was selected::

    from tracequest.expect import select, ANY

    queries = select(traces, service="customer", name="SELECT", kind="CLIENT")
    queries.expect_count(at_most=1, hint="cache the customer: one query per dispatch")
    select(traces, service="driver", status="ERROR").expect_event("exception")

A selection is immutable and every span in it keeps its trace. A failing
assertion raises :class:`~tracequest.expect.failure.QuestFailure` with what
was expected, what the traces show instead, the waterfall of the trace that
shows it, and the hint given.

Every assertion except :meth:`Selection.expect_count` fails on an empty
selection: a property of no spans proves nothing, and a check that passes
because its selector matched nothing is the mistake this module exists to
prevent.

This module holds :func:`select`, the :class:`Selection` it returns and the
assertions on each selected span's own properties; matching one span and the
words for spans found are in :mod:`tracequest.expect.matching`, the
assertions on how spans relate in :mod:`tracequest.expect.relations`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from tracequest.expect.failure import fail
from tracequest.expect.matching import (ANY, SHOWN, STATUSES, Filter, attribute_of, checked, event_attributes,
                                        event_matches, events_of, has_attribute, listed, plural, quote,
                                        quoted_names, some_of, span_label, value_matches, wanted_value)
from tracequest.expect.relations import RelationAssertions, ancestors_of, descendants_of, links_into
from tracequest.traces.model import Span, Trace

__all__ = ["Selection", "select"]


class Selection(RelationAssertions):
    """Spans picked out of traces; each keeps its trace. Immutable: filters return new ones."""

    def __init__(self, picked: list[tuple[Span, Trace]], query: list, scope: list[Trace],
                 label: str | None = None, world: list[Trace] | None = None):
        self._picked = picked
        self._query = query          # [Filter, op, Filter, op, ...]: what str() shows
        self._scope = scope          # traces the spans were chosen from, for the waterfall
        self._label = label
        self._world = scope if world is None else world   # every trace given to select()

    def _new(self, picked, query, scope=None, label=None) -> Selection:
        return Selection(picked, query, self._scope if scope is None else scope, label, self._world)

    # --- building -----------------------------------------------------------

    def where(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Only the selected spans that also match these filters."""
        extra = Filter.of(service, name, kind, status, attributes)
        return self._narrowed(extra)

    def matching(self, predicate: Callable[[Span], bool], description: str) -> Selection:
        """Only the selected spans for which ``predicate(span)`` is true, described in words."""
        return self._narrowed(Filter([(description, predicate)]))

    def children(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Direct children of the selected spans (TraceQL `>`)."""
        return self._walked(">", lambda s: s.children, Filter.of(service, name, kind, status, attributes))

    def parent(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """The parents of the selected spans (TraceQL `<`)."""
        return self._walked("<", lambda s: [s.parent] if s.parent else [],
                            Filter.of(service, name, kind, status, attributes))

    def descendants(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Children, their children and so on (TraceQL `>>`)."""
        return self._walked(">>", descendants_of, Filter.of(service, name, kind, status, attributes))

    def ancestors(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Parent, grandparent and so on up to the root (TraceQL `<<`)."""
        return self._walked("<<", ancestors_of, Filter.of(service, name, kind, status, attributes))

    def linked_to(self, other: Selection) -> Selection:
        """Only the selected spans that carry a Link to a span of ``other``."""
        targets = other._ids()
        picked = [(s, t) for s, t in self._picked if links_into(s, targets)]
        return self._new(picked, [*self._query, "->", f"({other})"])

    def named(self, label: str) -> Selection:
        """The same spans, called ``label`` in failure messages instead of the selector text."""
        return self._new(self._picked, self._query, label=label)

    def each(self) -> Iterator[Selection]:
        """One selection per selected span, in order, each called by its span's label."""
        for pair in self._picked:
            yield self._new([pair], self._query, [pair[1]], span_label(pair[0]))

    def _narrowed(self, extra: Filter) -> Selection:
        picked = [(s, t) for s, t in self._picked if extra(s)]
        query = list(self._query)
        if query and isinstance(query[-1], Filter):
            query[-1] = query[-1].plus(extra)
        else:
            query = [*query, "&&", extra]
        return self._new(picked, query)

    def _walked(self, op: str, step: Callable[[Span], Iterable[Span]], keep: Filter) -> Selection:
        seen: set[int] = set()
        picked = []
        for span, trace in self._picked:
            for other in step(span):
                if id(other) not in seen and keep(other):
                    seen.add(id(other))
                    picked.append((other, trace))
        picked.sort(key=lambda pair: (pair[0].start_ns, pair[0].span_id))
        return self._new(picked, [*self._query, op, keep], self.traces or self._scope)

    # --- reading ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._picked)

    def __iter__(self) -> Iterator[Span]:
        return (span for span, _ in self._picked)

    def __bool__(self) -> bool:
        return bool(self._picked)

    @property
    def spans(self) -> list[Span]:
        return [span for span, _ in self._picked]

    @property
    def traces(self) -> list[Trace]:
        """The traces that hold the selected spans, each once, in the order first met."""
        found: dict[str, Trace] = {}
        for _, trace in self._picked:
            found.setdefault(trace.trace_id, trace)
        return list(found.values())

    def __str__(self) -> str:
        return " ".join(str(part) for part in self._query)

    def __repr__(self) -> str:
        return f"<Selection {self} : {plural(len(self), 'span')}>"

    @property
    def label(self) -> str:
        """What failure messages call these spans: the name given, or the selector."""
        return self._label or f"spans {self}"

    def _ids(self) -> set[tuple[str, str]]:
        return {(s.trace_id, s.span_id) for s, _ in self._picked}

    def _every(self) -> str:
        """The subject of an "Expected:" line: 'every one of X', or just X when X is one span."""
        return self.label if len(self) == 1 else f"every one of {self.label}"

    def _none(self, predicate: str) -> str:
        return f"{self.label} not to {predicate}" if len(self) == 1 else f"none of {self.label} to {predicate}"

    def _trace_of(self, span: Span) -> Trace:
        return next(t for s, t in self._picked if s is span)

    # --- assertions ---------------------------------------------------------

    def expect_count(self, exactly: int | None = None, at_least: int | None = None,
                     at_most: int | None = None, hint: str = "", per_trace: bool = False) -> Selection:
        """Exactly / at least / at most this many spans were selected.

        With ``per_trace=True`` the bound holds in each trace the selection was
        drawn from (every trace given to select(), or holding the spans a
        relation started from), counting traces where nothing matched as 0.
        """
        bounds = [(word, value, test) for word, value, test in (
            ("exactly", exactly, lambda n, v: n == v),
            ("at least", at_least, lambda n, v: n >= v),
            ("at most", at_most, lambda n, v: n <= v)) if value is not None]
        if not bounds:
            raise TypeError("expect_count needs exactly=, at_least= or at_most=")
        wanted = " and ".join(f"{word} {value}" for word, value, _ in bounds)
        groups = ([[s for s in self if s.trace_id == t.trace_id] for t in self._scope] if per_trace
                  else [self.spans])
        for i, spans in enumerate(groups):
            if all(test(len(spans), value) for _, value, test in bounds):
                continue
            found = f"{plural(len(spans), 'span')}: {listed(spans)}"
            if per_trace:
                trace = self._scope[i]
                self._fail(f"{wanted} of {self.label} in every trace",
                           f"trace {trace.trace_id} has {found if spans else 'none'}.", hint, spans, trace)
            self._fail(f"{wanted} of {self.label}", f"{found}." if spans else f"no span matches {self}.", hint, spans)
        return self

    def expect_attribute(self, key: str, equals: Any = ANY, hint: str = "") -> Selection:
        """Every selected span has attribute ``key`` (with this value, when one is given)."""
        self._need_spans(f"attribute {key}", hint)
        missing = [s for s in self if not has_attribute(s, key)]
        wrong = [s for s in self if has_attribute(s, key) and not value_matches(attribute_of(s, key), equals)]
        expected = f"{self._every()} to have attribute {key}{wanted_value(equals)}"
        if missing:
            self._fail(expected, f"{some_of(missing, len(self))} {'has' if len(missing) == 1 else 'have'} "
                       f"no attribute {key}: {listed(missing)}.", hint, missing)
        if wrong:
            values = ", ".join(f"{quote(attribute_of(s, key))} on '{s.name}'" for s in wrong[:SHOWN])
            self._fail(expected, f"{some_of(wrong, len(self))} {'has' if len(wrong) == 1 else 'have'} "
                       f"{key} = {values}.", hint, wrong)
        return self

    def expect_no_attribute(self, key: str, hint: str = "") -> Selection:
        """No selected span carries attribute ``key``."""
        self._need_spans(f"no attribute {key}", hint)
        carrying = [s for s in self if has_attribute(s, key)]
        if carrying:
            values = ", ".join(f"{quote(attribute_of(s, key))} on '{s.name}'" for s in carrying[:SHOWN])
            self._fail(self._none(f"carry attribute {key}"),
                       f"{some_of(carrying, len(self))} {'does' if len(carrying) == 1 else 'do'}: "
                       f"{key} = {values}.", hint, carrying)
        return self

    def expect_duration(self, at_least_ms: float | None = None, at_most_ms: float | None = None,
                        hint: str = "") -> Selection:
        """Every selected span lasted at least / at most this long."""
        if at_least_ms is None and at_most_ms is None:
            raise TypeError("expect_duration needs at_least_ms= or at_most_ms=")
        bounds = " and ".join(f"{word} {value:g}ms" for word, value in
                              (("at least", at_least_ms), ("at most", at_most_ms)) if value is not None)
        self._need_spans(f"a duration of {bounds}", hint)
        off = [s for s in self
               if (at_least_ms is not None and s.duration_ms < at_least_ms)
               or (at_most_ms is not None and s.duration_ms > at_most_ms)]
        if off:
            self._fail(f"{self._every()} to last {bounds}",
                       f"{some_of(off, len(self))} did not: {listed(off)}.", hint, off)
        return self

    def expect_status(self, code: str, hint: str = "") -> Selection:
        """Every selected span ended with this status: "ERROR", "OK" or "UNSET"."""
        code = checked(code, STATUSES, "status")
        self._need_spans(f"status {code}", hint)
        off = [s for s in self if s.status != code]
        if off:
            statuses = ", ".join(f"'{s.name}' is {s.status}" for s in off[:SHOWN])
            self._fail(f"{self._every()} to have status {code}",
                       f"{some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: {statuses}.",
                       hint, off)
        return self

    def expect_event(self, name: Any, attributes: dict | None = None, hint: str = "") -> Selection:
        """Every selected span has an event ``name`` (carrying these attributes, when given).

        ``name`` may also be ``ANY`` (an event of any name), a compiled regex or a function.
        """
        wanted = Filter.of(attributes=attributes)
        with_attrs = f" with {str(wanted)[1:-1]}" if attributes else ""
        called = "an event" if name is ANY else (f"an event '{name}'" if isinstance(name, str)
                                                 else f"an event named{wanted_value(name)}")
        self._need_spans(f"{called}{with_attrs}", hint)
        expected = f"{self._every()} to have {called}{with_attrs}"
        named = [s for s in self if any(value_matches(e.name, name) for e in s.events)]
        off = [s for s in self if s not in named]
        if off:
            self._fail(expected, f"{some_of(off, len(self))} {'has' if len(off) == 1 else 'have'} "
                       f"no such event: {events_of(off)}.", hint, off)
        off = [s for s in self if not any(value_matches(e.name, name) and event_matches(e, attributes or {})
                                          for e in s.events)]
        if off:
            shown = "; ".join(f"'{s.name}' has {event_attributes(s, name)}" for s in off[:SHOWN])
            self._fail(expected, f"{some_of(off, len(self))} {'has' if len(off) == 1 else 'have'} "
                       f"it with other attributes: {shown}.", hint, off)
        return self

    def expect_attribute_count(self, at_least: int | None = None, at_most: int | None = None,
                               hint: str = "") -> Selection:
        """Every selected span carries at least / at most this many attributes of its own."""
        if at_least is None and at_most is None:
            raise TypeError("expect_attribute_count needs at_least= or at_most=")
        bounds = " and ".join(f"{word} {value}" for word, value in
                              (("at least", at_least), ("at most", at_most)) if value is not None)
        self._need_spans(f"{bounds} attributes", hint)
        off = [s for s in self if (at_least is not None and len(s.attributes) < at_least)
               or (at_most is not None and len(s.attributes) > at_most)]
        if off:
            shown = "; ".join(f"'{s.name}' has {plural(len(s.attributes), 'attribute')}"
                              f" ({', '.join(sorted(s.attributes)) or 'none'})" for s in off[:SHOWN])
            self._fail(f"{self._every()} to carry {bounds} attributes",
                       f"{some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: {shown}.",
                       hint, off)
        return self

    def expect_same_names(self, other: Selection, hint: str = "") -> Selection:
        """These spans and ``other``'s have the same names: a name that holds no ids or arguments."""
        self._need_spans("the same names as for another input", hint)
        other._need_spans("the same names as for another input", hint)
        mine, theirs = sorted({s.name for s in self}), sorted({s.name for s in other})
        if mine != theirs:
            only_mine = [n for n in mine if n not in theirs]
            only_theirs = [n for n in theirs if n not in mine]
            self._fail(f"{self.label} to be named the same for every input, "
                       "with no ids or arguments in the name",
                       f"one input gave {quoted_names(only_mine)}, the other {quoted_names(only_theirs)}.",
                       hint, self.spans[:1])
        return self

    def expect_no_event(self, name: str, hint: str = "") -> Selection:
        """No selected span has an event called ``name``."""
        self._need_spans(f"no event '{name}'", hint)
        off = [s for s in self if any(e.name == name for e in s.events)]
        if off:
            self._fail(self._none(f"have an event '{name}'"),
                       f"{some_of(off, len(self))} {'does' if len(off) == 1 else 'do'}: {listed(off)}.",
                       hint, off)
        return self

    # --- failing ------------------------------------------------------------

    def _need_spans(self, wanted: str, hint: str) -> None:
        if not self._picked:
            self._fail(f"{self.label} with {wanted}",
                       f"no span matches {self}, so there is nothing to check.", hint, [])

    def _fail(self, expected: str, found: str, hint: str, about: list[Span], trace: Trace | None = None):
        """Raise the verdict, with the waterfall of the trace that shows the problem."""
        if trace is None:
            trace = self._trace_of(about[0]) if about else (self._scope[0] if self._scope else None)
        fail(expected, found, hint, trace)


def select(traces: Trace | Iterable[Trace], service=None, name=None, kind=None, status=None,
           attributes=None) -> Selection:
    """The spans of these traces matching every filter given.

    ``service`` and ``name`` are a string or a compiled regex (which must match
    the whole text); ``attributes`` maps a key to a value, ``ANY`` (present with
    any value), a compiled regex, or a function of the value returning a bool.
    Attributes are looked up on the span, then on its resource (service.name).
    """
    traces = [traces] if isinstance(traces, Trace) else list(traces)
    keep = Filter.of(service, name, kind, status, attributes)
    picked = [(span, trace) for trace in traces for span in trace if keep(span)]
    return Selection(picked, [keep], traces)
