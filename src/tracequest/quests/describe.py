"""Words for what a trace holds, for the "Found:" line of a failing check."""

from __future__ import annotations

from typing import Iterable

from ..model import Span, Trace


def span_label(span: Span) -> str:
    """'GET /eta' (SERVER span of eta, 21.3ms)"""
    return f"'{span.name}' ({span.kind} span of {span.service}, {span.duration_ms:.1f}ms)"


def list_spans(spans: Iterable[Span], limit: int = 5) -> str:
    spans = list(spans)
    if not spans:
        return "no spans"
    shown = ", ".join(span_label(s) for s in spans[:limit])
    more = len(spans) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def spans_of(traces: Iterable[Trace]) -> list[Span]:
    return [span for trace in traces for span in trace]


def trace_of(traces: Iterable[Trace], span: Span) -> Trace:
    return next(t for t in traces if t.trace_id == span.trace_id)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")
