"""The terminal waterfall: one row per span, bars placed on a shared time axis.

It takes a :class:`~tracequest.traces.model.Trace` and reads only its public
fields; it names the model in words, not in an import, because the model
imports this module (and the HTML waterfall) so that a trace can draw itself.
"""

from __future__ import annotations

LABEL_WIDTH = 44
ERROR_MARK = "!"
CRITICAL_MARK = "*"

_RESET = "\033[0m"
_RED = "\033[31m"
_SERVICE_COLORS = ["\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[34m", "\033[37m"]


def format_duration(ns: int) -> str:
    """Short human duration: 850us, 12.3ms, 1.42s."""
    if ns < 1_000_000:
        return f"{ns / 1000:.0f}us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f}ms"
    return f"{ns / 1e9:.2f}s"


def render_waterfall(trace, width: int = 100, color: bool = False) -> str:
    """Render a trace as text.

    Each row: critical-path and error marks, the span indented by depth, its
    service and duration, then a bar whose offset and length are proportional
    to the span's start and duration within the whole trace.
    """
    bar_width = max(10, width - LABEL_WIDTH - 22)
    start, total = trace.start_ns, max(trace.duration_ns, 1)
    critical = {s.span_id for s in trace.critical_path()}
    services = trace.services
    lines = [_header(trace, len(critical))]
    for span, depth in trace.walk():
        marks = (CRITICAL_MARK if span.span_id in critical else " ") + (ERROR_MARK if span.is_error else " ")
        label = ("  " * depth + span.name)[:LABEL_WIDTH]
        offset = int((span.start_ns - start) / total * bar_width)
        length = max(1, round(span.duration_ns / total * bar_width))
        length = min(length, bar_width - offset) or 1
        bar = " " * offset + "█" * length
        bar = bar.ljust(bar_width)
        service = span.service[:10]
        if color:
            hue = _SERVICE_COLORS[services.index(span.service) % len(_SERVICE_COLORS)]
            bar = (_RED if span.is_error else hue) + bar + _RESET
            service = hue + service.ljust(10) + _RESET
        else:
            service = service.ljust(10)
        orphan = " (orphan)" if span.parent_id and span.parent is None else ""
        lines.append(
            f"{marks} {label.ljust(LABEL_WIDTH)} {service} {format_duration(span.duration_ns):>8} |{bar}|{orphan}"
        )
    lines.append(f"legend: {CRITICAL_MARK} on the critical path, {ERROR_MARK} error status")
    return "\n".join(lines)


def _header(trace, critical_count: int) -> str:
    problems = []
    if len(trace.roots) != 1:
        problems.append(f"{len(trace.roots)} roots")
    if trace.orphans:
        problems.append(f"{len(trace.orphans)} orphans")
    if trace.errors:
        problems.append(f"{len(trace.errors)} errors")
    extra = f" ({', '.join(problems)})" if problems else ""
    return (
        f"trace {trace.trace_id}  {format_duration(trace.duration_ns)}  "
        f"{len(trace)} spans  {len(trace.services)} services{extra}"
    )
