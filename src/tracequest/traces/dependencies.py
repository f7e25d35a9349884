"""Which service calls which: the dependency picture, derived from traces.

Jaeger draws a system architecture graph from the same idea: whenever a span's
parent lives in another service, the parent's service called the span's
service. Counting those spans over many traces shows the shape of the system
and how busy each connection is, without anyone having drawn it by hand.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Iterable

from tracequest.traces.model import Trace
from tracequest.traces.waterfall_html import service_colors

Calls = dict[tuple[str, str], int]

NODE_W, NODE_H = 150, 38
COL_GAP, ROW_GAP = 120, 26
PAD = 16
LOOP_DIP = 46  # how far below the nodes a backward arrow swings
LABEL_AT = 0.62  # labels sit past the middle of an arrow, where fanned-out arrows are apart


def service_calls(traces: Iterable[Trace] | Trace) -> Calls:
    """(caller, callee) -> number of spans whose parent is in the caller's service.

    Orphans have no parent to look at, so they add no call.
    """
    if isinstance(traces, Trace):
        traces = [traces]
    calls: Counter = Counter()
    for trace in traces:
        for span in trace:
            if span.parent is not None and span.parent.service != span.service:
                calls[(span.parent.service, span.service)] += 1
    return dict(calls)


def call_depths(calls: Calls) -> dict[str, int]:
    """Each service's column: how many calls away it is from an entry service.

    Entry services are those nobody calls. When every service left is called
    by another (a circle of calls), the one that calls out the most compared
    with how often it is called in stands in as the entry.
    """
    services = sorted({name for pair in calls for name in pair})
    depths: dict[str, int] = {}
    while len(depths) < len(services):
        left = [s for s in services if s not in depths]
        called = {callee for (caller, callee) in calls if caller in left}
        frontier = [s for s in left if s not in called] or [_likeliest_entry(left, calls)]
        level = 0
        while frontier:
            for name in frontier:
                depths[name] = level
            frontier = sorted({b for (a, b) in calls if a in frontier and b not in depths})
            level += 1
    return depths


def _likeliest_entry(services: list[str], calls: Calls) -> str:
    """Of sorted services, the first with the most callees less callers."""
    def outward(name: str) -> int:
        return sum(a == name for a, _ in calls) - sum(b == name for _, b in calls)
    return max(services, key=outward)


# --- text ---------------------------------------------------------------------

def dependencies_text(calls: Calls) -> str:
    """One line per connection, callers in call-depth order: easy to diff and to grep."""
    if not calls:
        return "no calls between services"
    depths = call_depths(calls)
    pairs = sorted(calls, key=lambda p: (depths[p[0]], p[0], depths[p[1]], p[1]))
    width = max(len(f"{a} -> {b}") for a, b in pairs)
    return "\n".join(f"{f'{a} -> {b}':<{width}}  {calls[(a, b)]:>5} call{_s(calls[(a, b)])}"
                     for a, b in pairs)


# --- SVG ----------------------------------------------------------------------

def dependencies_html(calls: Calls) -> str:
    """An inline SVG: a box per service, columns by call depth, arrows labelled with counts."""
    if not calls:
        return '<p class="tqdep-empty">No calls between services in these traces.</p>'
    boxes = _layout(call_depths(calls))
    colors = service_colors(list(boxes))
    width = max(x for x, _ in boxes.values()) + NODE_W + PAD
    backward = any(boxes[b][0] <= boxes[a][0] for a, b in calls)
    height = max(y for _, y in boxes.values()) + NODE_H + PAD + (LOOP_DIP if backward else 0)
    parts = [
        f'<svg class="tqdep" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="service dependency graph" '
        f'style="display: block; font: 13px system-ui, sans-serif; max-width: 100%; height: auto">',
        '<defs><marker id="tqdep-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>',
        *(_edge(boxes[a], boxes[b], count) for (a, b), count in sorted(calls.items())),
        *(_node(name, x, y, colors[name]) for name, (x, y) in boxes.items()),
        "</svg>",
    ]
    return "\n".join(parts)


def _layout(depths: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Top-left corner of each service's box; columns are centred on the tallest one."""
    columns: dict[int, list[str]] = {}
    for name in sorted(depths, key=lambda n: (depths[n], n)):
        columns.setdefault(depths[name], []).append(name)
    tallest = max(len(names) for names in columns.values())
    boxes = {}
    for depth, names in columns.items():
        top = PAD + (tallest - len(names)) * (NODE_H + ROW_GAP) // 2
        for row, name in enumerate(names):
            boxes[name] = (PAD + depth * (NODE_W + COL_GAP), top + row * (NODE_H + ROW_GAP))
    return boxes


def _node(name: str, x: int, y: int, color: str) -> str:
    label = name if len(name) <= 18 else name[:17] + "\u2026"
    return (f'<g><title>{_e(name)}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="#fff" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<rect x="{x}" y="{y}" width="8" height="{NODE_H}" rx="3" fill="{color}"/>'
            f'<text x="{x + NODE_W // 2 + 4}" y="{y + NODE_H // 2 + 5}" text-anchor="middle" '
            f'fill="#1f2937">{_e(label)}</text></g>')


def _edge(src: tuple[int, int], dst: tuple[int, int], count: int) -> str:
    """A curve from caller to callee; calls back to the left swing below the boxes."""
    (x1, y1), (x2, y2) = src, dst
    if x2 > x1:
        start, end = (x1 + NODE_W, y1 + NODE_H / 2), (x2, y2 + NODE_H / 2)
        mid_x = (start[0] + end[0]) / 2
        c1, c2 = (mid_x, start[1]), (mid_x, end[1])
    else:
        start, end = (x1 + NODE_W / 2, y1 + NODE_H), (x2 + NODE_W / 2 + 12, y2 + NODE_H)
        low = max(start[1], end[1]) + LOOP_DIP
        c1, c2 = (start[0], low), (end[0], low)
    lx, ly = _curve_point((start, c1, c2, end), LABEL_AT)
    path = f"M{start[0]:.0f},{start[1]:.0f} C{c1[0]:.0f},{c1[1]:.0f} {c2[0]:.0f},{c2[1]:.0f} {end[0]:.0f},{end[1]:.0f}"
    return (f'<g class="tqdep-edge"><path d="{path}" fill="none" stroke="#9ca3af" stroke-width="1.6" '
            f'marker-end="url(#tqdep-arrow)"/>{_edge_label(lx, ly, f"{count} call{_s(count)}")}</g>')


def _edge_label(x: float, y: float, text: str) -> str:
    """Text on a white patch, so the arrow under it does not strike it through."""
    width = 7 * len(text) + 10
    return (f'<rect x="{x - width / 2:.0f}" y="{y - 9:.0f}" width="{width}" height="18" rx="4" '
            f'fill="#fff"/><text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle" fill="#374151" '
            f'font-size="12">{_e(text)}</text>')


def _curve_point(points, t: float) -> tuple[float, float]:
    """A point along a cubic Bezier curve (t=0 at its start, t=1 at its end)."""
    weights = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3)
    return (sum(w * p[0] for w, p in zip(weights, points)),
            sum(w * p[1] for w, p in zip(weights, points)))


# --- Jupyter ------------------------------------------------------------------

class DependencyGraph:
    """Service calls that draw themselves: an SVG in Jupyter, text in a terminal."""

    def __init__(self, calls: Calls):
        self.calls = dict(calls)

    @classmethod
    def from_traces(cls, traces: Iterable[Trace] | Trace) -> DependencyGraph:
        return cls(service_calls(traces))

    @property
    def services(self) -> list[str]:
        depths = call_depths(self.calls)
        return sorted(depths, key=lambda n: (depths[n], n))

    def __repr__(self) -> str:
        return f"<DependencyGraph {len(self.services)} services, {len(self.calls)} connections>"

    def __str__(self) -> str:
        return dependencies_text(self.calls)

    def _repr_html_(self) -> str:
        return dependencies_html(self.calls)


def _e(value) -> str:
    return html.escape(str(value))


def _s(count: int) -> str:
    return "" if count == 1 else "s"
