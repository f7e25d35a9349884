"""The embedded backend's own web pages: recent traces, one trace, dependencies.

They exist so a learner without Docker (and so without Jaeger's UI) can read
traces in a browser. Every page is drawn from the same store and trace model
as the query API, and none needs JavaScript.
"""

from __future__ import annotations

import html
import threading
import time
from collections import Counter, OrderedDict

from flask import Flask, Response

from tracequest.backend.store import SpanStore, TraceSummary
from tracequest.traces.dependencies import Calls, dependencies_html, dependencies_text, service_calls
from tracequest.traces.model import Trace
from tracequest.traces.timefmt import format_go_duration, format_rfc3339
from tracequest.traces.waterfall import format_duration
from tracequest.traces.waterfall_html import ERROR_COLOR, render_html

LIST_LIMIT = 100
#: The dependencies page reads the newest traces up to this many spans in all: turning
#: spans into the trace model costs ~25 us each, and the page must answer in well under 100 ms.
DEPENDENCY_SPAN_BUDGET = 1_000
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

    calls_cache = _CallsCache()

    @app.get("/")
    def trace_list():
        body = trace_list_html(store.recent_traces(limit=LIST_LIMIT)) + retention_html(store)
        return _page("Trace Quest — recent traces", body)

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
        summaries = newest_within(store.recent_traces(limit=LIST_LIMIT), DEPENDENCY_SPAN_BUDGET)
        return _page("Trace Quest — dependencies", dependencies_page_html(calls_cache.calls(store, summaries),
                                                                           summaries))


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


def retention_html(store: SpanStore) -> str:
    """One line saying how much the store holds and what it lets go."""
    limits = []
    if store.max_spans:
        limits.append(f"beyond {store.max_spans:,} spans")
    if store.max_age_s:
        limits.append(f"after {format_go_duration(int(store.max_age_s * 1e9))}")
    drops = f"; the oldest whole traces are dropped {' or '.join(limits)}" if limits else "; nothing is dropped"
    return f"<p class='muted'>{store.span_count():,} spans stored{drops}.</p>"


def newest_within(summaries: list[TraceSummary], span_budget: int) -> list[TraceSummary]:
    """The newest traces whose spans add up to at most ``span_budget`` (always at least one)."""
    picked, total = [], 0
    for summary in summaries:
        if picked and total + summary.span_count > span_budget:
            break
        picked.append(summary)
        total += summary.span_count
    return picked


def dependencies_page_html(calls: Calls, summaries: list[TraceSummary]) -> str:
    """The dependency graph of the given traces, saying which traces it covers, with the counts as text."""
    spans = sum(t.span_count for t in summaries)
    covers = (f"from the {len(summaries)} most recent trace{'' if len(summaries) == 1 else 's'}, "
              f"{spans:,} span{'' if spans == 1 else 's'}")
    return (f"<h1>Service dependencies <span class='muted'>({covers})</span></h1>"
            f'<div class="panel">{dependencies_html(calls)}</div>'
            f"<pre>{html.escape(dependencies_text(calls))}</pre>")


class _CallsCache:
    """Each trace's service calls, kept until the trace gains spans, so reloading the page is cheap."""

    def __init__(self, size: int = 4 * LIST_LIMIT):
        self.size = size
        self._by_trace: OrderedDict[str, tuple[int, Calls]] = OrderedDict()
        self._lock = threading.Lock()

    def calls(self, store: SpanStore, summaries: list[TraceSummary]) -> Calls:
        with self._lock:
            return self._calls(store, summaries)

    def _calls(self, store: SpanStore, summaries: list[TraceSummary]) -> Calls:
        stale = [t.trace_id for t in summaries if self._by_trace.get(t.trace_id, (None,))[0] != t.span_count]
        counts = {t.trace_id: t.span_count for t in summaries}
        for trace in store.traces(stale):
            self._by_trace[trace.trace_id] = (counts[trace.trace_id], service_calls(trace))
        total: Counter = Counter()
        for summary in summaries:
            if summary.trace_id in self._by_trace:
                self._by_trace.move_to_end(summary.trace_id)
                total.update(self._by_trace[summary.trace_id][1])
        while len(self._by_trace) > self.size:
            self._by_trace.popitem(last=False)
        return dict(total)


def _load_trace(store: SpanStore, trace_id: str) -> Trace | None:
    found = store.traces([trace_id])
    return found[0] if found else None


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
