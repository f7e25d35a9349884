"""Assertions on traces that read like the property they prove.

Select spans the way Tracetest's selectors and TraceQL's span sets do (by
service, name, kind, status and attributes, then along parent, child,
descendant, ancestor and link relations), and assert on what was selected::

    from tracequest.expect import select, ANY

    queries = select(traces, service="customer", name="SELECT", kind="CLIENT")
    queries.expect_count(at_most=1, hint="cache the customer: one query per dispatch")
    select(traces, service="driver", status="ERROR").expect_event("exception")

A selection is immutable and every span in it keeps its trace. A failing
assertion raises :class:`~tracequest.quests.failure.QuestFailure` with what
was expected, what the traces show instead, the waterfall of the trace that
shows it, and the hint given.

Every assertion except :meth:`Selection.expect_count` fails on an empty
selection: a property of no spans proves nothing, and a check that passes
because its selector matched nothing is the mistake this module exists to
prevent.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator

from .model import Span, Trace
from .quests.failure import WIDTH, QuestFailure

__all__ = ["ANY", "Selection", "select"]

KINDS = ("SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER")
STATUSES = ("ERROR", "OK", "UNSET")
SHOWN = 3  # spans named in a "Found:" line before "and N more"


class _Any:
    """Matches any value: the attribute only has to be there."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


# --- matching one span ------------------------------------------------------

def attribute_of(span: Span, key: str, default: Any = None) -> Any:
    """A span's attribute, or its resource's (as TraceQL's unscoped `.key` does)."""
    if key in span.attributes:
        return span.attributes[key]
    return span.resource.get(key, default)


def _has_attribute(span: Span, key: str) -> bool:
    return key in span.attributes or key in span.resource


def _value_matches(actual: Any, expected: Any) -> bool:
    if expected is ANY:
        return True
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.fullmatch(actual) is not None
    if callable(expected):
        return bool(expected(actual))
    return actual == expected


def _show_value(expected: Any) -> str:
    """How an expected value reads in a selector or an "Expected:" line."""
    if isinstance(expected, re.Pattern):
        return f'=~"{expected.pattern}"'
    if callable(expected):
        name = getattr(expected, "__name__", "<lambda>")
        return " (passing a test)" if name.startswith("<") else f" ({name.replace('_', ' ')})"
    return f"={_quote(expected)}"


def _wanted_value(expected: Any) -> str:
    """' = "eta"', ' matching /GET .*/', ' is positive' (a function's name), or '' for ANY."""
    if expected is ANY:
        return ""
    if isinstance(expected, re.Pattern):
        return f" matching /{expected.pattern}/"
    if callable(expected):
        name = getattr(expected, "__name__", "<lambda>")
        return " passing a test" if name.startswith("<") else " " + name.replace("_", " ")
    return f" = {_quote(expected)}"


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _text_matches(actual: str, expected) -> bool:
    if isinstance(expected, re.Pattern):
        return expected.fullmatch(actual) is not None
    return actual == expected


class _Filter:
    """The conditions inside one pair of braces: `{service="x" name="y" kind=CLIENT}`."""

    def __init__(self, conditions: list[tuple[str, Callable[[Span], bool]]] | None = None):
        self.conditions = conditions or []

    @classmethod
    def of(cls, service=None, name=None, kind=None, status=None, attributes=None) -> _Filter:
        conditions = []
        if service is not None:
            conditions.append((_intrinsic("service", service), lambda s: _text_matches(s.service, service)))
        if name is not None:
            conditions.append((_intrinsic("name", name), lambda s: _text_matches(s.name, name)))
        if kind is not None:
            kind = _checked(kind, KINDS, "kind")
            conditions.append((f"kind={kind}", lambda s: s.kind == kind))
        if status is not None:
            status = _checked(status, STATUSES, "status")
            conditions.append((f"status={status}", lambda s: s.status == status))
        for key, expected in (attributes or {}).items():
            shown = f".{key}" if expected is ANY else f".{key}{_show_value(expected)}"
            conditions.append((shown, _attribute_condition(key, expected)))
        return cls(conditions)

    def plus(self, other: _Filter) -> _Filter:
        return _Filter(self.conditions + other.conditions)

    def __call__(self, span: Span) -> bool:
        return all(test(span) for _, test in self.conditions)

    def __str__(self) -> str:
        return "{" + " ".join(text for text, _ in self.conditions) + "}"


def _intrinsic(field: str, expected) -> str:
    if isinstance(expected, re.Pattern):
        return f'{field}=~"{expected.pattern}"'
    return f'{field}="{expected}"'


def _attribute_condition(key: str, expected) -> Callable[[Span], bool]:
    return lambda s: _has_attribute(s, key) and _value_matches(attribute_of(s, key), expected)


def _checked(value: str, allowed: tuple, what: str) -> str:
    upper = str(value).upper()
    if upper not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return upper


# --- describing spans -------------------------------------------------------

def span_label(span: Span) -> str:
    """'GET /eta' (SERVER span of eta, 21.3ms)"""
    return f"'{span.name}' ({span.kind} span of {span.service}, {span.duration_ms:.1f}ms)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _listed(spans: list[Span]) -> str:
    shown = ", ".join(span_label(s) for s in spans[:SHOWN])
    more = len(spans) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _some_of(bad: list[Span], total: int) -> str:
    """'2 of 5 spans' / 'the span' — how many of the selection a finding is about."""
    if total == 1:
        return "the span"
    return f"{len(bad)} of {total} spans"


# --- the selection ------------------------------------------------------------

class Selection:
    """Spans picked out of traces; each keeps its trace. Immutable: filters return new ones."""

    def __init__(self, picked: list[tuple[Span, Trace]], query: list, scope: list[Trace],
                 label: str | None = None, world: list[Trace] | None = None):
        self._picked = picked
        self._query = query          # [_Filter, op, _Filter, op, ...]: what str() shows
        self._scope = scope          # traces the spans were chosen from, for the waterfall
        self._label = label
        self._world = scope if world is None else world   # every trace given to select()

    def _new(self, picked, query, scope=None, label=None) -> Selection:
        return Selection(picked, query, self._scope if scope is None else scope, label, self._world)

    # --- building -----------------------------------------------------------

    def where(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Only the selected spans that also match these filters."""
        extra = _Filter.of(service, name, kind, status, attributes)
        return self._narrowed(extra)

    def matching(self, predicate: Callable[[Span], bool], description: str) -> Selection:
        """Only the selected spans for which ``predicate(span)`` is true, described in words."""
        return self._narrowed(_Filter([(description, predicate)]))

    def children(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Direct children of the selected spans (TraceQL `>`)."""
        return self._walked(">", lambda s: s.children, _Filter.of(service, name, kind, status, attributes))

    def parent(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """The parents of the selected spans (TraceQL `<`)."""
        return self._walked("<", lambda s: [s.parent] if s.parent else [],
                            _Filter.of(service, name, kind, status, attributes))

    def descendants(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Children, their children and so on (TraceQL `>>`)."""
        return self._walked(">>", _descendants_of, _Filter.of(service, name, kind, status, attributes))

    def ancestors(self, service=None, name=None, kind=None, status=None, attributes=None) -> Selection:
        """Parent, grandparent and so on up to the root (TraceQL `<<`)."""
        return self._walked("<<", _ancestors_of, _Filter.of(service, name, kind, status, attributes))

    def linked_to(self, other: Selection) -> Selection:
        """Only the selected spans that carry a Link to a span of ``other``."""
        targets = other._ids()
        picked = [(s, t) for s, t in self._picked if _links_into(s, targets)]
        return self._new(picked, [*self._query, "->", f"({other})"])

    def named(self, label: str) -> Selection:
        """The same spans, called ``label`` in failure messages instead of the selector text."""
        return self._new(self._picked, self._query, label=label)

    def each(self) -> Iterator[Selection]:
        """One selection per selected span, in order, each called by its span's label."""
        for pair in self._picked:
            yield self._new([pair], self._query, [pair[1]], span_label(pair[0]))

    def _narrowed(self, extra: _Filter) -> Selection:
        picked = [(s, t) for s, t in self._picked if extra(s)]
        query = list(self._query)
        if query and isinstance(query[-1], _Filter):
            query[-1] = query[-1].plus(extra)
        else:
            query = [*query, "&&", extra]
        return self._new(picked, query)

    def _walked(self, op: str, step: Callable[[Span], Iterable[Span]], keep: _Filter) -> Selection:
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
        return f"<Selection {self} : {_plural(len(self), 'span')}>"

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

    def _links_text(self, span: Span) -> str:
        """What a span's links point at, by name where the traces given hold the target."""
        if not span.links:
            return f"'{span.name}' has no links"
        known = {(s.trace_id, s.span_id): s for t in self._world for s in t}
        shown = ", ".join(span_label(known[(l.trace_id, l.span_id)]) if (l.trace_id, l.span_id) in known
                          else f"span {l.span_id} of trace {l.trace_id}, which no trace here holds"
                          for l in span.links[:SHOWN])
        return f"'{span.name}' links to {shown}"

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
            found = f"{_plural(len(spans), 'span')}: {_listed(spans)}"
            if per_trace:
                trace = self._scope[i]
                self._fail(f"{wanted} of {self.label} in every trace",
                           f"trace {trace.trace_id} has {found if spans else 'none'}.", hint, spans, trace)
            self._fail(f"{wanted} of {self.label}", f"{found}." if spans else f"no span matches {self}.", hint, spans)
        return self

    def expect_attribute(self, key: str, equals: Any = ANY, hint: str = "") -> Selection:
        """Every selected span has attribute ``key`` (with this value, when one is given)."""
        self._need_spans(f"attribute {key}", hint)
        missing = [s for s in self if not _has_attribute(s, key)]
        wrong = [s for s in self if _has_attribute(s, key) and not _value_matches(attribute_of(s, key), equals)]
        expected = f"{self._every()} to have attribute {key}{_wanted_value(equals)}"
        if missing:
            self._fail(expected, f"{_some_of(missing, len(self))} {'has' if len(missing) == 1 else 'have'} "
                       f"no attribute {key}: {_listed(missing)}.", hint, missing)
        if wrong:
            values = ", ".join(f"{_quote(attribute_of(s, key))} on '{s.name}'" for s in wrong[:SHOWN])
            self._fail(expected, f"{_some_of(wrong, len(self))} {'has' if len(wrong) == 1 else 'have'} "
                       f"{key} = {values}.", hint, wrong)
        return self

    def expect_no_attribute(self, key: str, hint: str = "") -> Selection:
        """No selected span carries attribute ``key``."""
        self._need_spans(f"no attribute {key}", hint)
        carrying = [s for s in self if _has_attribute(s, key)]
        if carrying:
            values = ", ".join(f"{_quote(attribute_of(s, key))} on '{s.name}'" for s in carrying[:SHOWN])
            self._fail(self._none(f"carry attribute {key}"),
                       f"{_some_of(carrying, len(self))} {'does' if len(carrying) == 1 else 'do'}: "
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
                       f"{_some_of(off, len(self))} did not: {_listed(off)}.", hint, off)
        return self

    def expect_status(self, code: str, hint: str = "") -> Selection:
        """Every selected span ended with this status: "ERROR", "OK" or "UNSET"."""
        code = _checked(code, STATUSES, "status")
        self._need_spans(f"status {code}", hint)
        off = [s for s in self if s.status != code]
        if off:
            statuses = ", ".join(f"'{s.name}' is {s.status}" for s in off[:SHOWN])
            self._fail(f"{self._every()} to have status {code}",
                       f"{_some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: {statuses}.",
                       hint, off)
        return self

    def expect_event(self, name: Any, attributes: dict | None = None, hint: str = "") -> Selection:
        """Every selected span has an event ``name`` (carrying these attributes, when given).

        ``name`` may also be ``ANY`` (an event of any name), a compiled regex or a function.
        """
        wanted = _Filter.of(attributes=attributes)
        with_attrs = f" with {str(wanted)[1:-1]}" if attributes else ""
        called = "an event" if name is ANY else (f"an event '{name}'" if isinstance(name, str)
                                                 else f"an event named{_wanted_value(name)}")
        self._need_spans(f"{called}{with_attrs}", hint)
        expected = f"{self._every()} to have {called}{with_attrs}"
        named = [s for s in self if any(_value_matches(e.name, name) for e in s.events)]
        off = [s for s in self if s not in named]
        if off:
            self._fail(expected, f"{_some_of(off, len(self))} {'has' if len(off) == 1 else 'have'} "
                       f"no such event: {_events_of(off)}.", hint, off)
        off = [s for s in self if not any(_value_matches(e.name, name) and _event_matches(e, attributes or {})
                                          for e in s.events)]
        if off:
            shown = "; ".join(f"'{s.name}' has {_event_attributes(s, name)}" for s in off[:SHOWN])
            self._fail(expected, f"{_some_of(off, len(self))} {'has' if len(off) == 1 else 'have'} "
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
            shown = "; ".join(f"'{s.name}' has {_plural(len(s.attributes), 'attribute')}"
                              f" ({', '.join(sorted(s.attributes)) or 'none'})" for s in off[:SHOWN])
            self._fail(f"{self._every()} to carry {bounds} attributes",
                       f"{_some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: {shown}.",
                       hint, off)
        return self

    def expect_descendant_of(self, ancestor: Selection, hint: str = "") -> Selection:
        """Every selected span sits under a span of ``ancestor``: its child, grandchild, and so on."""
        self._need_spans(f"an ancestor among {ancestor.label}", hint)
        ids = ancestor._ids()
        off = [s for s in self if not any((a.trace_id, a.span_id) in ids for a in _ancestors_of(s))]
        if off:
            self._fail(f"{self._every()} to sit inside {ancestor.label}",
                       f"{_some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: "
                       + "; ".join(_whose_parent(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_child_of(self, parent: Selection, hint: str = "") -> Selection:
        """Every selected span's parent is a span of ``parent``."""
        self._need_spans(f"a parent among {parent.label}", hint)
        ids = parent._ids()
        off = [s for s in self if (s.trace_id, s.parent_id) not in ids]
        if off:
            self._fail(f"{self._every()} to be a child of {parent.label}",
                       f"{_some_of(off, len(self))} {'is' if len(off) == 1 else 'are'} not: "
                       + "; ".join(_whose_parent(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_not_child_of(self, parent: Selection, hint: str = "") -> Selection:
        """No selected span's parent is a span of ``parent``."""
        self._need_spans(f"no parent among {parent.label}", hint)
        ids = parent._ids()
        off = [s for s in self if (s.trace_id, s.parent_id) in ids]
        if off:
            self._fail(self._none(f"be a child of {parent.label}"),
                       f"{_some_of(off, len(self))} {'is' if len(off) == 1 else 'are'}: "
                       + "; ".join(_whose_parent(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_linked_to(self, other: Selection, hint: str = "") -> Selection:
        """Every selected span carries a Link to a span of ``other``."""
        self._need_spans(f"a link to {other.label}", hint)
        targets = other._ids()
        off = [s for s in self if not _links_into(s, targets)]
        if off:
            self._fail(f"{self._every()} to carry a link to {other.label}",
                       f"{_some_of(off, len(self))} {'does' if len(off) == 1 else 'do'} not: "
                       + "; ".join(self._links_text(s) for s in off[:SHOWN]) + ".", hint, off)
        return self

    def expect_not_linked_to(self, other: Selection, hint: str = "") -> Selection:
        """No selected span carries a Link to a span of ``other``."""
        self._need_spans(f"no link to {other.label}", hint)
        targets = other._ids()
        off = [s for s in self if _links_into(s, targets)]
        if off:
            self._fail(self._none(f"carry a link to {other.label}"),
                       f"{_some_of(off, len(self))} {'does' if len(off) == 1 else 'do'}: {_listed(off)}.",
                       hint, off)
        return self

    def expect_one_trace(self, hint: str = "") -> Selection:
        """All selected spans share one trace id."""
        self._need_spans("one trace", hint)
        traces = self.traces
        if len(traces) > 1:
            where = "; ".join(f"{_listed([s for s in self if s.trace_id == t.trace_id])} "
                              f"in trace {t.trace_id}" for t in traces[:SHOWN])
            self._fail(f"{self.label} to share one trace",
                       f"they are spread over {len(traces)} traces: {where}.", hint,
                       [next(iter(self))])
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
                       f"one input gave {_names(only_mine)}, the other {_names(only_theirs)}.",
                       hint, self.spans[:1])
        return self

    def expect_concurrency(self, at_most: int, hint: str = "") -> Selection:
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
                       f"{worst} ran at once: {_listed(worst_spans)}.", hint, worst_spans)
        return self

    def expect_no_event(self, name: str, hint: str = "") -> Selection:
        """No selected span has an event called ``name``."""
        self._need_spans(f"no event '{name}'", hint)
        off = [s for s in self if any(e.name == name for e in s.events)]
        if off:
            self._fail(self._none(f"have an event '{name}'"),
                       f"{_some_of(off, len(self))} {'does' if len(off) == 1 else 'do'}: {_listed(off)}.",
                       hint, off)
        return self

    def expect_separate_traces(self, hint: str = "") -> Selection:
        """Every selected span is in a trace no other selected span is in."""
        self._need_spans("a trace each", hint)
        traces = self.traces
        if len(traces) < len(self):
            shared = next(t for t in traces if sum(s.trace_id == t.trace_id for s in self) > 1)
            together = [s for s in self if s.trace_id == shared.trace_id]
            self._fail(f"each of {self.label} in a trace of its own",
                       f"the {len(self)} spans share {_plural(len(traces), 'trace')}: "
                       f"{_listed(together)} are all in trace {shared.trace_id}.", hint, together)
        return self

    def expect_in_trace_of(self, other: Selection, hint: str = "") -> Selection:
        """Every selected span is in a trace that holds a span of ``other``."""
        self._need_spans(f"the trace of {other.label}", hint)
        theirs = {s.trace_id for s in other}
        off = [s for s in self if s.trace_id not in theirs]
        if off:
            self._fail(f"{self._every()} to be in the same trace as {other.label}",
                       f"{_some_of(off, len(self))} {'is' if len(off) == 1 else 'are'} in another "
                       f"trace: {_listed(off)}.", hint, off)
        return self

    def expect_not_in_trace_of(self, other: Selection, hint: str = "") -> Selection:
        """No selected span shares a trace with a span of ``other``."""
        self._need_spans(f"a trace apart from {other.label}", hint)
        theirs = {s.trace_id for s in other}
        off = [s for s in self if s.trace_id in theirs]
        if off:
            self._fail(self._none(f"be in a trace of {other.label}"),
                       f"{_some_of(off, len(self))} {'is' if len(off) == 1 else 'are'} in one: "
                       f"{_listed(off)}.", hint, off)
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
        details = trace.waterfall(width=WIDTH) if trace is not None else ""
        raise QuestFailure(expected, found, hint, details)


def select(traces: Trace | Iterable[Trace], service=None, name=None, kind=None, status=None,
           attributes=None) -> Selection:
    """The spans of these traces matching every filter given.

    ``service`` and ``name`` are a string or a compiled regex (which must match
    the whole text); ``attributes`` maps a key to a value, ``ANY`` (present with
    any value), a compiled regex, or a function of the value returning a bool.
    Attributes are looked up on the span, then on its resource (service.name).
    """
    traces = [traces] if isinstance(traces, Trace) else list(traces)
    keep = _Filter.of(service, name, kind, status, attributes)
    picked = [(span, trace) for trace in traces for span in trace if keep(span)]
    return Selection(picked, [keep], traces)


# --- helpers ----------------------------------------------------------------

def _descendants_of(span: Span) -> list[Span]:
    found, stack = [], list(reversed(span.children))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(reversed(child.children))
    return found


def _ancestors_of(span: Span) -> list[Span]:
    found, at = [], span.parent
    while at is not None and at not in found:
        found.append(at)
        at = at.parent
    return found


def _links_into(span: Span, targets: set[tuple[str, str]]) -> bool:
    return any((link.trace_id, link.span_id) in targets for link in span.links)


def _whose_parent(span: Span) -> str:
    if span.parent is not None:
        return f"'{span.name}' hangs under {span_label(span.parent)}"
    if span.parent_id:
        return f"'{span.name}' hangs under span {span.parent_id}, which its trace does not hold"
    return f"'{span.name}' is the root of a trace of its own"




def _event_matches(event, attributes: dict) -> bool:
    return all(key in event.attributes and _value_matches(event.attributes[key], expected)
               for key, expected in attributes.items())


def _events_of(spans: list[Span]) -> str:
    parts = []
    for span in spans[:SHOWN]:
        names = ", ".join(f"'{e.name}'" for e in span.events) or "no events"
        parts.append(f"'{span.name}' has {names}")
    return "; ".join(parts)


def _event_attributes(span: Span, name: Any) -> str:
    event = next(e for e in span.events if _value_matches(e.name, name))
    shown = ", ".join(f"{k}={_quote(v)}" for k, v in event.attributes.items())
    return shown or "no attributes"


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names) if names else "no other names"


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
