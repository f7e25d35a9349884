"""The HTML waterfall: the same picture as the terminal one, for Jupyter and the browser.

One self-contained fragment: its stylesheet travels with it (every selector
starts with the ``tqwf`` prefix, so it cannot restyle a notebook or a page),
it loads nothing and needs no JavaScript. Each span is a ``<details>`` element,
so a click on a row opens the span's attributes, events and links.

Like the terminal waterfall it takes a :class:`~tracequest.traces.model.Trace`
and its spans and reads only their public fields; it names the model in words,
not in an import, because the model imports both renderers to draw itself.
"""

from __future__ import annotations

import html
import json
import math

from tracequest.traces.waterfall import format_duration

PREFIX = "tqwf"
# Service colours, in the order services first appear. Red is left out on
# purpose: it means "error" and nothing else.
PALETTE = ("#3f7cc4", "#f0932b", "#4caf6a", "#9b6cc4", "#2fa7a0", "#c9a227", "#8d6e63", "#6b7a8f")
ERROR_COLOR = "#d62828"
CRITICAL_COLOR = "#1f2937"

_STYLE = f"""
.tqwf {{ font: 13px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937;
  background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 12px 14px; }}
.tqwf code {{ font: 12px ui-monospace, "DejaVu Sans Mono", monospace; }}
.tqwf-head {{ display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: baseline; margin-bottom: 8px; }}
.tqwf-title {{ font-size: 15px; font-weight: 600; }}
.tqwf-stat b {{ font-variant-numeric: tabular-nums; }}
.tqwf-warn {{ color: {ERROR_COLOR}; font-weight: 600; }}
.tqwf-legend {{ display: flex; flex-wrap: wrap; gap: 4px 16px; margin-bottom: 10px; color: #4b5563; }}
.tqwf-swatch {{ display: inline-block; width: 12px; height: 12px; border-radius: 3px;
  vertical-align: -2px; margin-right: 5px; }}
.tqwf-critical-sample {{ display: inline-block; width: 4px; height: 14px; background: {CRITICAL_COLOR};
  vertical-align: -3px; margin-right: 5px; }}
.tqwf-grid {{ display: grid; grid-template-columns: minmax(200px, 30%) 120px 64px minmax(240px, 1fr);
  column-gap: 10px; align-items: center; }}
.tqwf-axis {{ color: #6b7280; font-size: 11px; border-bottom: 1px solid #d1d5db; padding: 2px 0; }}
.tqwf-tick {{ position: absolute; top: 0; white-space: nowrap; }}
.tqwf-span > summary {{ list-style: none; cursor: pointer; padding: 4px 0; border-bottom: 1px solid #f3f4f6; }}
.tqwf-span > summary::-webkit-details-marker {{ display: none; }}
.tqwf-span > summary:hover {{ background: #f9fafb; }}
.tqwf-critical > summary {{ box-shadow: inset 4px 0 0 {CRITICAL_COLOR}; }}
.tqwf-critical .tqwf-name {{ font-weight: 600; }}
.tqwf-label {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.tqwf-caret {{ display: inline-block; width: 14px; color: #9ca3af; }}
.tqwf-caret::before {{ content: "\\25B8"; }}
.tqwf-span[open] .tqwf-caret::before {{ content: "\\25BE"; }}
.tqwf-badge {{ font-size: 11px; border-radius: 3px; padding: 0 4px; margin-left: 6px; }}
.tqwf-badge-error {{ color: #fff; background: {ERROR_COLOR}; font-weight: 600; }}
.tqwf-badge-orphan {{ color: #92400e; background: #fef3c7; }}
.tqwf-service {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; color: #374151; }}
.tqwf-dot {{ display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 5px; }}
.tqwf-dur {{ text-align: right; font-variant-numeric: tabular-nums; }}
.tqwf-track {{ position: relative; height: 16px;
  background-image: linear-gradient(to right, #e5e7eb 1px, transparent 1px);
  background-size: var(--tqwf-step, 25%) 100%; border-right: 1px solid #e5e7eb; }}
.tqwf-axis .tqwf-track {{ height: 16px; background: none; border: none; }}
.tqwf-bar {{ position: absolute; top: 1px; bottom: 1px; min-width: 2px; border-radius: 2px; }}
.tqwf-event {{ position: absolute; top: -1px; bottom: -1px; width: 2px; margin-left: -1px;
  background: #111827; }}
.tqwf-detail {{ margin: 4px 0 10px 24px; padding: 8px 12px; background: #f9fafb;
  border-left: 3px solid #d1d5db; }}
.tqwf-facts {{ display: flex; flex-wrap: wrap; gap: 2px 18px; }}
.tqwf-facts em {{ font-style: normal; color: #6b7280; margin-right: 3px; }}
.tqwf-sections {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 4px 24px; }}
.tqwf-detail h4 {{ margin: 8px 0 2px; font-size: 12px; color: #4b5563; }}
/* Resets against notebook themes that centre and stripe every table. */
.tqwf-detail table {{ border-collapse: collapse; margin: 0; width: auto; table-layout: auto; }}
.tqwf-detail tr {{ background: none; }}
.tqwf-detail th {{ text-align: left; font-weight: normal; color: #6b7280; padding: 1px 14px 1px 0;
  vertical-align: top; }}
.tqwf-detail td {{ padding: 1px 0; text-align: left; }}
.tqwf-detail ul {{ margin: 0; padding-left: 18px; }}
.tqwf-none {{ color: #9ca3af; }}
.tqwf-more {{ color: #6b7280; padding: 6px 0; }}
"""


def service_colors(services: list[str]) -> dict[str, str]:
    """A colour for each service; the same list of services always gets the same colours."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(services)}


def render_html(trace, max_rows: int | None = None) -> str:
    """The trace as an HTML fragment: header, legend, time axis, one row per span.

    ``max_rows`` cuts long traces short (in walk order) so a notebook cell stays
    readable; the header still counts every span.
    """
    colors = service_colors(trace.services)
    critical = {s.span_id for s in trace.critical_path()}
    walked = list(trace.walk())
    shown = walked if max_rows is None else walked[:max_rows]
    step = tick_step(trace.duration_ns)
    parts = [
        f'<div class="{PREFIX}" style="--tqwf-step:{_percent(step, trace):.3f}%"><style>{_STYLE}</style>',
        _header(trace),
        _legend(colors, critical),
        _axis(trace, step),
        *(_row(trace, span, depth, colors[span.service], span.span_id in critical) for span, depth in shown),
    ]
    if len(shown) < len(walked):
        hidden = len(walked) - len(shown)
        parts.append(f'<div class="{PREFIX}-more">{hidden} more span{_s(hidden)} not shown '
                     f"(max_rows={max_rows}).</div>")
    parts.append("</div>")
    return "\n".join(parts)


# --- header, legend and axis ------------------------------------------------

def _header(trace) -> str:
    """Counts that tell at a glance whether the trace is whole and healthy."""
    roots, orphans, errors = len(trace.roots), len(trace.orphans), len(trace.errors)
    stats = [
        _stat(format_duration(trace.duration_ns), "total"),
        _stat(len(trace), f"span{_s(len(trace))}"),
        _stat(len(trace.services), f"service{_s(len(trace.services))}"),
        _stat(roots, f"root{_s(roots)}", warn=roots != 1),
        _stat(orphans, f"orphan{_s(orphans)}", warn=orphans > 0),
        _stat(errors, f"error{_s(errors)}", warn=errors > 0),
    ]
    title = f'<span class="{PREFIX}-title">Trace <code>{_e(trace.trace_id)}</code></span>'
    return f'<div class="{PREFIX}-head">{title}{"".join(stats)}</div>'


def _stat(value, label: str, warn: bool = False) -> str:
    css = f"{PREFIX}-stat {PREFIX}-warn" if warn else f"{PREFIX}-stat"
    return f'<span class="{css}"><b>{_e(value)}</b> {_e(label)}</span>'


def _legend(colors: dict[str, str], critical: set[str]) -> str:
    items = [f'<span><i class="{PREFIX}-swatch" style="background:{c}"></i>{_e(name)}</span>'
             for name, c in colors.items()]
    items.append(f'<span><i class="{PREFIX}-swatch" style="background:{ERROR_COLOR}"></i>error</span>')
    items.append(f'<span><i class="{PREFIX}-critical-sample"></i><b>critical path</b> '
                 f"({len(critical)} span{_s(len(critical))})</span>")
    items.append("<span>click a row for details</span>")
    return f'<div class="{PREFIX}-legend">{"".join(items)}</div>'


def _axis(trace, step: int) -> str:
    """Tick labels at round times, above the bars; the rows draw matching grid lines."""
    ticks = []
    for ns in range(0, trace.duration_ns + 1, step):
        left = _percent(ns, trace)
        shift = "0" if ns == 0 else "-100%" if left > 92 else "-50%"
        label = _tick_label(ns)
        ticks.append(f'<span class="{PREFIX}-tick" style="left:{left:.3f}%;'
                     f'transform:translateX({shift})">{label}</span>')
    return (f'<div class="{PREFIX}-grid {PREFIX}-axis"><span>span</span><span>service</span>'
            f'<span class="{PREFIX}-dur">duration</span>'
            f'<span class="{PREFIX}-track">{"".join(ticks)}</span></div>')


def _tick_label(ns: int) -> str:
    """Ticks fall on round times, so they read best without decimals: 0, 200ms, 1.4s."""
    if ns == 0:
        return "0"
    if ns < 1_000_000:
        return f"{ns / 1000:g}us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:g}ms"
    return f"{ns / 1e9:g}s"


def tick_step(duration_ns: int) -> int:
    """The smallest round step (1, 2 or 5 times a power of ten) cutting the trace into at most 7."""
    rough = max(duration_ns / 7, 1)
    power = 10 ** math.floor(math.log10(rough))
    return next(f * power for f in (1, 2, 5, 10) if f * power >= rough)


# --- one span -----------------------------------------------------------------

def _row(trace, span, depth: int, color: str, on_path: bool) -> str:
    classes = [f"{PREFIX}-span"]
    if on_path:
        classes.append(f"{PREFIX}-critical")
    if span.is_error:
        classes.append(f"{PREFIX}-error")
    summary = (
        f'<summary class="{PREFIX}-grid {PREFIX}-row">'
        f"{_label(span, depth)}"
        f'<span class="{PREFIX}-service"><i class="{PREFIX}-dot" style="background:{color}"></i>'
        f"{_e(span.service)}</span>"
        f'<span class="{PREFIX}-dur">{format_duration(span.duration_ns)}</span>'
        f"{_track(trace, span, color)}</summary>"
    )
    return (f'<details class="{" ".join(classes)}" data-span-id="{_e(span.span_id)}" '
            f'data-service="{_e(span.service)}">{summary}{_details(trace, span, on_path)}</details>')


def _label(span, depth: int) -> str:
    badges = ""
    if span.is_error:
        badges += f'<span class="{PREFIX}-badge {PREFIX}-badge-error">error</span>'
    if span.parent_id and span.parent is None:
        badges += f'<span class="{PREFIX}-badge {PREFIX}-badge-orphan">orphan</span>'
    return (f'<span class="{PREFIX}-label" style="padding-left:{6 + depth * 18}px" title="{_e(span.name)}">'
            f'<span class="{PREFIX}-caret"></span><span class="{PREFIX}-name">{_e(span.name)}</span>'
            f"{badges}</span>")


def _track(trace, span, color: str) -> str:
    """The bar: its left edge and width are shares of the whole trace's duration."""
    left = _percent(span.start_ns - trace.start_ns, trace)
    width = _percent(span.duration_ns, trace)
    fill = ERROR_COLOR if span.is_error else color
    tip = f"{span.service}: {span.name} — {format_duration(span.duration_ns)}"
    bar = (f'<span class="{PREFIX}-bar" style="left:{left:.3f}%;width:{width:.3f}%;background:{fill}" '
           f'title="{_e(tip)}"></span>')
    ticks = "".join(
        f'<span class="{PREFIX}-event" style="left:{_percent(e.time_ns - trace.start_ns, trace):.3f}%" '
        f'title="{_e(e.name)}"></span>'
        for e in span.events
    )
    return f'<span class="{PREFIX}-track">{bar}{ticks}</span>'


def _percent(ns: int, trace) -> float:
    share = 100 * ns / max(trace.duration_ns, 1)
    return min(100.0, max(0.0, share))


def _details(trace, span, on_path: bool) -> str:
    """What a learner opens a span for: its facts, then attributes, events and links."""
    status = span.status + (f": {span.status_message}" if span.status_message else "")
    facts = [
        ("kind", span.kind),
        ("service", span.service),
        ("starts at", _offset(span.start_ns - trace.start_ns)),
        ("duration", format_duration(span.duration_ns)),
        ("self time", format_duration(trace.self_time_ns(span))),
        ("status", status),
        ("critical path", "yes" if on_path else "no"),
        ("span id", span.span_id),
        ("parent id", span.parent_id or "none (root)"),
    ]
    fact_html = "".join(f"<span><em>{_e(k)}</em> {_e(v)}</span>" for k, v in facts)
    sections = [
        _section("Attributes", _table((k, _value(v)) for k, v in span.attributes.items()), span.attributes),
        _section("Events", _events(span), span.events),
        _section("Links", _links(span), span.links),
    ]
    return (f'<div class="{PREFIX}-detail"><div class="{PREFIX}-facts">{fact_html}</div>'
            f'<div class="{PREFIX}-sections">{"".join(sections)}</div></div>')


def _section(title: str, body: str, items) -> str:
    content = body if items else f'<div class="{PREFIX}-none">none</div>'
    return f'<div class="{PREFIX}-section"><h4>{title}</h4>{content}</div>'


def _table(pairs) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _events(span) -> str:
    """Events with their time from the span's start: when, inside the span, it happened."""
    items = []
    for event in span.events:
        extra = f" <code>{_e(_value(event.attributes))}</code>" if event.attributes else ""
        items.append(f"<li><code>{_offset(event.time_ns - span.start_ns)}</code> {_e(event.name)}{extra}</li>")
    return f"<ul>{''.join(items)}</ul>"


def _links(span) -> str:
    items = [
        f"<li>trace <code>{_e(link.trace_id)}</code> span <code>{_e(link.span_id)}</code>"
        + (f" <code>{_e(_value(link.attributes))}</code>" if link.attributes else "") + "</li>"
        for link in span.links
    ]
    return f"<ul>{''.join(items)}</ul>"


def _offset(ns: int) -> str:
    """A signed offset such as +12.3ms; events may be stamped before their span starts."""
    if ns == 0:
        return "+0"
    return ("-" if ns < 0 else "+") + format_duration(abs(ns))


# --- small helpers ----------------------------------------------------------------

def _value(value) -> str:
    """Attribute values as text: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _e(value) -> str:
    return html.escape(str(value))


def _s(count: int) -> str:
    return "" if count == 1 else "s"
