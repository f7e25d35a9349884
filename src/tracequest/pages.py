"""The embedded backend's own web pages: recent traces, one trace, dependencies.

They exist so a learner without Docker (and so without Jaeger's UI) can read
traces in a browser. Every page is drawn from the same store and trace model
as the query API, and none needs JavaScript.
"""

from __future__ import annotations

import html
import time

from flask import Flask, Response

from .dependencies import dependencies_html, dependencies_text, service_calls
from .model import Trace, group_traces
from .otlp import spans_from_request
from .store import SpanStore, TraceSummary
from .timefmt import format_rfc3339
from .waterfall import format_duration
from .waterfall_html import ERROR_COLOR, render_html

LIST_LIMIT = 100
DURATION_BAR_COLOR = "#94a3b8"

_STYLE = f"""
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2937;
  background: #f3f4f6; }}
main {{ padding: 18px 24px; }}
nav {{ background: #1f2937; color: #e5e7eb; padding: 10px 24px; display: flex; gap: 22px;
  align-items: baseline; }}
nav b {{ color: #fff; font-size: 16px; }}
nav a {{ color: #cbd5e1; text-decoration: none; }}
nav a:hover {{ color: #fff; }}
h1 {{ font-size: 20px; margin: 4px 0 14px; }}
a {{ color: #1d4ed8; }}
code {{ font: 12px ui-monospace, "DejaVu Sans Mono", monospace; }}
table.traces {{ border-collapse: collapse; background: #fff; border: 1px solid #e5e7eb; }}
table.traces td, table.traces th {{ padding: 6px 12px; text-align: left; border-bottom: 1px solid #e5e7eb; }}
table.traces th {{ background: #f9fafb; font-weight: 600; color: #4b5563; }}
table.traces tr:hover td {{ background: #f9fafb; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.err {{ color: #fff; background: {ERROR_COLOR}; font-weight: 600; border-radius: 3px; padding: 0 6px; }}
.dur {{ display: flex; align-items: center; gap: 8px; justify-content: flex-end; }}
.dur i {{ display: inline-block; height: 8px; border-radius: 2px; background: {DURATION_BAR_COLOR}; }}
.dur span {{ min-width: 64px; text-align: right; font-variant-numeric: tabular-nums; }}
.muted {{ color: #6b7280; }}
.panel {{ background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 14px; }}
pre {{ font-size: 12px; }}
"""


def register(app: Flask, store: SpanStore) -> None:
    """Add the pages to the query API's Flask app."""

    @app.get("/")
    def trace_list():
        return _page("Trace Quest — recent traces", trace_list_html(store.recent_traces(limit=LIST_LIMIT)))

    @app.get("/trace/<trace_id>")
    def trace_page(trace_id: str):
        trace = _load_trace(store, trace_id)
        if trace is None:
            return _not_found(trace_id)
        fallback = (f'<p class="muted">Also as <a href="/trace/{trace.trace_id}/text">plain text</a> '
                    f'(the terminal waterfall).</p>')
        return _page(f"Trace {trace.trace_id}", trace_html(trace) + fallback)

    @app.get("/trace/<trace_id>/text")
    def trace_text(trace_id: str):
        trace = _load_trace(store, trace_id)
        if trace is None:
            return Response(f"no trace {trace_id}\n", 404, mimetype="text/plain")
        return Response(trace.waterfall(width=140) + "\n", mimetype="text/plain")

    @app.get("/dependencies")
    def dependencies_page():
        ids = [t.trace_id for t in store.recent_traces(limit=LIST_LIMIT)]
        traces = group_traces(spans_from_request(store.get_traces(ids))) if ids else []
        return _page("Trace Quest — dependencies", dependencies_page_html(traces))


def trace_html(trace: Trace) -> str:
    """The trace drawn for a browser page."""
    return render_html(trace)


def trace_list_html(summaries: list[TraceSummary]) -> str:
    """The home page body: newest traces first, each a link to its waterfall."""
    if not summaries:
        return ("<h1>Recent traces</h1><p>No traces yet. Send a request to the demo, e.g. "
                "<code>curl 'http://127.0.0.1:8080/dispatch?customer=123'</code>, then reload.</p>")
    longest = max(max(t.duration_ns for t in summaries), 1)
    rows = "".join(_summary_row(t, longest) for t in summaries)
    return (f"<h1>Recent traces <span class='muted'>({len(summaries)})</span></h1>"
            "<table class='traces'><tr><th>started</th><th>service</th><th>root operation</th>"
            "<th class='num'>duration</th><th class='num'>spans</th><th class='num'>errors</th>"
            f"<th>trace</th></tr>{rows}</table>")


def _summary_row(t: TraceSummary, longest_ns: int) -> str:
    link = f"/trace/{html.escape(t.trace_id)}"
    errors = f'<span class="err">{t.error_count}</span>' if t.error_count else "0"
    bar_px = max(2, round(120 * t.duration_ns / longest_ns))
    return (
        f'<tr class="trace-row"><td title="{format_rfc3339(t.start_ns)}">{_local_time(t.start_ns)}</td>'
        f"<td>{html.escape(t.service)}</td>"
        f'<td><a href="{link}">{html.escape(t.operation)}</a></td>'
        f'<td class="num"><div class="dur"><i style="width:{bar_px}px"></i>'
        f"<span>{format_duration(t.duration_ns)}</span></div></td>"
        f'<td class="num">{t.span_count}</td><td class="num">{errors}</td>'
        f'<td><a href="{link}"><code>{html.escape(t.trace_id[:16])}…</code></a></td></tr>'
    )


def dependencies_page_html(traces: list[Trace]) -> str:
    """The dependency graph of the given traces, with the same counts as text."""
    calls = service_calls(traces)
    return (f"<h1>Service dependencies <span class='muted'>(from the {len(traces)} most recent "
            f"trace{'' if len(traces) == 1 else 's'})</span></h1>"
            f'<div class="panel">{dependencies_html(calls)}</div>'
            f"<pre>{html.escape(dependencies_text(calls))}</pre>")


def _load_trace(store: SpanStore, trace_id: str) -> Trace | None:
    spans = spans_from_request(store.get_traces([trace_id.lower()]))
    return Trace(spans) if spans else None


def _local_time(ns: int) -> str:
    """The learner's wall-clock time, to the millisecond: what they compare with their logs."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{rest // 1_000_000:03d}"


def _not_found(trace_id: str) -> Response:
    body = (f"<h1>No trace {html.escape(trace_id)}</h1><p>It may not have arrived yet, or the "
            "backend was restarted. <a href='/'>Recent traces</a></p>")
    return _page("Trace not found", body, 404)


def _page(title: str, body: str, status: int = 200) -> Response:
    nav = ("<nav><b>Trace Quest</b><a href='/'>Recent traces</a>"
           "<a href='/dependencies'>Dependencies</a></nav>")
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{nav}<main>{body}</main></body></html>"
    )
    return Response(document, status, mimetype="text/html")
