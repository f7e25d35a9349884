"""The trace model: a tree of spans, and the analyses everything else builds on.

There is one model. The receiver, the query client, the renderers, the quest
checks and the notebooks all see spans through these classes, whatever backend
the spans came from (see ``otlp.spans_from_request``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from tracequest.traces.waterfall import render_waterfall
from tracequest.traces.waterfall_html import render_html


@dataclass(eq=False)
class Event:
    name: str
    time_ns: int
    attributes: dict = field(default_factory=dict)


@dataclass(eq=False)
class Link:
    trace_id: str
    span_id: str
    attributes: dict = field(default_factory=dict)


@dataclass(eq=False)
class Span:
    """One unit of work. Ids are lowercase hex; times are Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str = "INTERNAL"
    start_ns: int = 0
    end_ns: int = 0
    status: str = "UNSET"
    status_message: str = ""
    attributes: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    resource: dict = field(default_factory=dict)
    scope: str = ""
    # Filled in by Trace: the tree around this span.
    parent: Span | None = field(default=None, repr=False)
    children: list[Span] = field(default_factory=list, repr=False)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6

    @property
    def is_error(self) -> bool:
        return self.status == "ERROR"

    def event(self, name: str) -> Event | None:
        """The first event with this name, or None."""
        return next((e for e in self.events if e.name == name), None)

    def __repr__(self) -> str:
        return f"<Span {self.service}:{self.name} {self.duration_ms:.1f}ms {self.span_id}>"


class Trace:
    """All spans sharing a trace id, linked into a tree.

    Spans whose parent is not in the trace are *orphans*: they show that
    context was lost, or that the parent's span never reached the backend.
    """

    def __init__(self, spans: Iterable[Span]):
        self.spans = sorted(spans, key=lambda s: (s.start_ns, s.span_id))
        if not self.spans:
            raise ValueError("a trace needs at least one span")
        ids = {s.trace_id for s in self.spans}
        if len(ids) > 1:
            raise ValueError(f"spans of {len(ids)} traces given to one Trace")
        self.trace_id = self.spans[0].trace_id
        self._by_id = {s.span_id: s for s in self.spans}
        for span in self.spans:
            span.children = []
            span.parent = None
        for span in self.spans:
            parent = self._by_id.get(span.parent_id) if span.parent_id else None
            if parent is not None and parent is not span:
                span.parent = parent
                parent.children.append(span)

    # --- structure --------------------------------------------------------

    def span(self, span_id: str) -> Span:
        return self._by_id[span_id]

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __repr__(self) -> str:
        return f"<Trace {self.trace_id} {len(self)} spans, {self.duration_ms:.1f}ms>"

    @property
    def roots(self) -> list[Span]:
        """Spans with no parent at all: a healthy trace has exactly one."""
        return [s for s in self.spans if not s.parent_id]

    @property
    def orphans(self) -> list[Span]:
        """Spans that name a parent the trace does not hold."""
        return [s for s in self.spans if s.parent_id and s.parent is None]

    @property
    def top_level(self) -> list[Span]:
        """Where the tree starts: roots first, then orphans, by start time."""
        return [s for s in self.spans if s.parent is None]

    @property
    def root(self) -> Span:
        """The root span, or the earliest top-level span if there is no root."""
        roots = self.roots
        return roots[0] if roots else self.top_level[0]

    def walk(self) -> Iterator[tuple[Span, int]]:
        """Depth-first (span, depth) pairs, children in start order."""
        stack = [(s, 0) for s in reversed(self.top_level)]
        while stack:
            span, depth = stack.pop()
            yield span, depth
            stack.extend((c, depth + 1) for c in reversed(span.children))

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(s.service for s in self.spans))

    def by_service(self) -> dict[str, list[Span]]:
        groups: dict[str, list[Span]] = defaultdict(list)
        for span in self.spans:
            groups[span.service].append(span)
        return dict(groups)

    def find(self, name: str | None = None, service: str | None = None, kind: str | None = None) -> list[Span]:
        """Spans matching every criterion given."""
        return [
            s for s in self.spans
            if (name is None or s.name == name)
            and (service is None or s.service == service)
            and (kind is None or s.kind == kind)
        ]

    @property
    def errors(self) -> list[Span]:
        return [s for s in self.spans if s.is_error]

    # --- time -------------------------------------------------------------

    @property
    def start_ns(self) -> int:
        return min(s.start_ns for s in self.spans)

    @property
    def end_ns(self) -> int:
        return max(s.end_ns for s in self.spans)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6

    def self_time_ns(self, span: Span) -> int:
        """Time in a span not covered by any of its children.

        Overlapping children count once, and children running past their
        parent's end are clipped, so self time is never negative.
        """
        covered = 0
        cursor = span.start_ns
        for child in sorted(span.children, key=lambda c: c.start_ns):
            start = max(child.start_ns, cursor)
            end = min(child.end_ns, span.end_ns)
            if end > start:
                covered += end - start
                cursor = end
        return span.duration_ns - covered

    def slowest_span(self) -> Span:
        """The span holding the most time of its own: where latency really lives."""
        return max(self.spans, key=lambda s: (self.self_time_ns(s), -s.start_ns))

    def critical_path(self) -> list[Span]:
        """Spans on the chain that decided the trace's end-to-end duration.

        Walking back from the end of a span, the child that finished last is
        what the span was waiting for; before that child started, the child
        that had finished last by then, and so on down the tree. Spans are
        returned in walk order.
        """
        on_path: set[str] = set()
        self._mark_critical(self.root, self.root.end_ns, on_path)
        return [s for s, _ in self.walk() if s.span_id in on_path]

    def _mark_critical(self, span: Span, until_ns: int, on_path: set[str]) -> None:
        on_path.add(span.span_id)
        cursor = min(until_ns, span.end_ns)
        while True:
            # Children that had finished by the cursor; a child still running
            # then ran in parallel with the path and did not hold it up.
            done = [c for c in span.children
                    if c.span_id not in on_path and c.start_ns < cursor
                    and min(c.end_ns, span.end_ns) <= cursor]
            if not done:
                return
            child = max(done, key=lambda c: min(c.end_ns, span.end_ns))
            self._mark_critical(child, cursor, on_path)
            cursor = child.start_ns

    # --- pictures -----------------------------------------------------------

    def waterfall(self, width: int = 100, color: bool = False) -> str:
        return render_waterfall(self, width=width, color=color)

    def _repr_html_(self) -> str:
        """Jupyter draws a trace as an HTML waterfall."""
        return render_html(self)

    def __str__(self) -> str:
        return self.waterfall()


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """Split spans into traces, newest trace first."""
    groups: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        groups[span.trace_id].append(span)
    traces = [Trace(group) for group in groups.values()]
    return sorted(traces, key=lambda t: t.start_ns, reverse=True)
