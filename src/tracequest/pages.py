"""The embedded backend's own web pages: a trace list and one page per trace.

They exist so a learner without Docker (and so without Jaeger's UI) can read
a trace in a browser. Both are drawn from the same store and trace model as
the API.
"""

from __future__ import annotations

import html

from flask import Flask, Response

from .model import Trace
from .otlp import spans_from_request
from .store import SpanStore
from .waterfall import format_duration

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; }
td, th { padding: .25rem .75rem; text-align: left; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.err { color: #b00020; font-weight: bold; }
pre { font-size: 12px; }
"""


def register(app: Flask, store: SpanStore) -> None:
    @app.get("/")
    def trace_list():
        rows = []
        for t in store.recent_traces(limit=100):
            errors = f'<span class="err">{t.error_count}</span>' if t.error_count else "0"
            rows.append(
                f'<tr><td><a href="/trace/{t.trace_id}"><code>{t.trace_id}</code></a></td>'
                f"<td>{html.escape(t.service)}</td><td>{html.escape(t.operation)}</td>"
                f'<td class="num">{format_duration(t.duration_ns)}</td>'
                f'<td class="num">{t.span_count}</td><td class="num">{errors}</td></tr>'
            )
        body = (
            "<h1>Recent traces</h1>"
            + ("<table><tr><th>trace</th><th>service</th><th>root operation</th>"
               "<th>duration</th><th>spans</th><th>errors</th></tr>" + "".join(rows) + "</table>"
               if rows else "<p>No traces yet. Send a request to the demo, e.g. "
               "<code>curl 'http://127.0.0.1:8080/dispatch?customer=123'</code>.</p>")
        )
        return _page("Trace Quest — traces", body)

    @app.get("/trace/<trace_id>")
    def trace_page(trace_id: str):
        export = store.get_traces([trace_id.lower()])
        spans = spans_from_request(export)
        if not spans:
            return _page("Trace not found", f"<h1>No trace {html.escape(trace_id)}</h1>", 404)
        trace = Trace(spans)
        return _page(f"Trace {trace.trace_id}", '<p><a href="/">all traces</a></p>' + trace_html(trace))


def trace_html(trace: Trace) -> str:
    """The trace drawn for a browser page."""
    return f"<pre>{html.escape(trace.waterfall(width=140))}</pre>"


def _page(title: str, body: str, status: int = 200) -> Response:
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(document, status, mimetype="text/html")
