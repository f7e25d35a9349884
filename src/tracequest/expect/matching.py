"""Whether one span matches a selector, and the words for spans a check found.

A selector's filters (``service="x" name="y" kind=CLIENT .key=ANY``) each test
one span and each read back as TraceQL-like text; a failing assertion's
"Found:" line names the spans it is about. Both live here, apart from the
:class:`~tracequest.expect.selection.Selection` that uses them, because they
are about a single span or a list of spans and know nothing of how spans were
selected or related, so the selection and the relation assertions share one
copy of each.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from tracequest.traces.model import Span

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


def has_attribute(span: Span, key: str) -> bool:
    """Whether the span or its resource carries ``key``, whatever its value."""
    return key in span.attributes or key in span.resource


def value_matches(actual: Any, expected: Any) -> bool:
    """``expected`` as a selector means it: ANY, a regex on the whole text, a test, or a value."""
    if expected is ANY:
        return True
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.fullmatch(actual) is not None
    if callable(expected):
        return bool(expected(actual))
    return actual == expected


def event_matches(event, attributes: dict) -> bool:
    """Whether an event carries every one of these attributes, each matching its value."""
    return all(key in event.attributes and value_matches(event.attributes[key], expected)
               for key, expected in attributes.items())


def _show_value(expected: Any) -> str:
    """How an expected value reads in a selector or an "Expected:" line."""
    if isinstance(expected, re.Pattern):
        return f'=~"{expected.pattern}"'
    if callable(expected):
        name = getattr(expected, "__name__", "<lambda>")
        return " (passing a test)" if name.startswith("<") else f" ({name.replace('_', ' ')})"
    return f"={quote(expected)}"


def wanted_value(expected: Any) -> str:
    """' = "eta"', ' matching /GET .*/', ' is positive' (a function's name), or '' for ANY."""
    if expected is ANY:
        return ""
    if isinstance(expected, re.Pattern):
        return f" matching /{expected.pattern}/"
    if callable(expected):
        name = getattr(expected, "__name__", "<lambda>")
        return " passing a test" if name.startswith("<") else " " + name.replace("_", " ")
    return f" = {quote(expected)}"


def quote(value: Any) -> str:
    """A value as a message shows it: text in double quotes, anything else as its repr."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _text_matches(actual: str, expected) -> bool:
    if isinstance(expected, re.Pattern):
        return expected.fullmatch(actual) is not None
    return actual == expected


class Filter:
    """The conditions inside one pair of braces: `{service="x" name="y" kind=CLIENT}`."""

    def __init__(self, conditions: list[tuple[str, Callable[[Span], bool]]] | None = None):
        self.conditions = conditions or []

    @classmethod
    def of(cls, service=None, name=None, kind=None, status=None, attributes=None) -> Filter:
        conditions = []
        if service is not None:
            conditions.append((_intrinsic("service", service), lambda s: _text_matches(s.service, service)))
        if name is not None:
            conditions.append((_intrinsic("name", name), lambda s: _text_matches(s.name, name)))
        if kind is not None:
            kind = checked(kind, KINDS, "kind")
            conditions.append((f"kind={kind}", lambda s: s.kind == kind))
        if status is not None:
            status = checked(status, STATUSES, "status")
            conditions.append((f"status={status}", lambda s: s.status == status))
        for key, expected in (attributes or {}).items():
            shown = f".{key}" if expected is ANY else f".{key}{_show_value(expected)}"
            conditions.append((shown, _attribute_condition(key, expected)))
        return cls(conditions)

    def plus(self, other: Filter) -> Filter:
        return Filter(self.conditions + other.conditions)

    def __call__(self, span: Span) -> bool:
        return all(test(span) for _, test in self.conditions)

    def __str__(self) -> str:
        return "{" + " ".join(text for text, _ in self.conditions) + "}"


def _intrinsic(field: str, expected) -> str:
    if isinstance(expected, re.Pattern):
        return f'{field}=~"{expected.pattern}"'
    return f'{field}="{expected}"'


def _attribute_condition(key: str, expected) -> Callable[[Span], bool]:
    return lambda s: has_attribute(s, key) and value_matches(attribute_of(s, key), expected)


def checked(value: str, allowed: tuple, what: str) -> str:
    """``value`` upper-cased, if it is one of ``allowed``; a ValueError naming them if not."""
    upper = str(value).upper()
    if upper not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return upper


# --- describing spans -------------------------------------------------------

def span_label(span: Span) -> str:
    """'GET /eta' (SERVER span of eta, 21.3ms)"""
    return f"'{span.name}' ({span.kind} span of {span.service}, {span.duration_ms:.1f}ms)"


def plural(count: int, word: str) -> str:
    """'1 span', '3 spans'."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def listed(spans: list[Span]) -> str:
    """The first few spans by their labels, then 'and N more'."""
    shown = ", ".join(span_label(s) for s in spans[:SHOWN])
    more = len(spans) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def some_of(bad: list[Span], total: int) -> str:
    """'2 of 5 spans' / 'the span' — how many of the selection a finding is about."""
    if total == 1:
        return "the span"
    return f"{len(bad)} of {total} spans"


def quoted_names(names: list[str]) -> str:
    """The names in quotes, as in "'a', 'b'"; 'no other names' for none."""
    return ", ".join(f"'{n}'" for n in names) if names else "no other names"


def events_of(spans: list[Span]) -> str:
    """What events the first few spans have: "'x' has 'retry', 'exception'; 'y' has no events"."""
    parts = []
    for span in spans[:SHOWN]:
        names = ", ".join(f"'{e.name}'" for e in span.events) or "no events"
        parts.append(f"'{span.name}' has {names}")
    return "; ".join(parts)


def event_attributes(span: Span, name: Any) -> str:
    """The attributes of the span's first event matching ``name``, as 'key="value", ...'."""
    event = next(e for e in span.events if value_matches(e.name, name))
    shown = ", ".join(f"{k}={quote(v)}" for k, v in event.attributes.items())
    return shown or "no attributes"
