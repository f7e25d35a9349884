"""`tracequest traces` and `show`: read the lab's traces from a terminal."""

from __future__ import annotations

import json
import shutil

from tracequest.cli.parser import (at_least_one, command, duration, positive_duration, query_url, trace_id,
                                   url_option, use_color)
from tracequest.host.ports import Ports
from tracequest.lab import Lab
from tracequest.traces.client import QueryClient, QueryError, TraceNotFound
from tracequest.traces.timefmt import format_rfc3339, parse_go_duration
from tracequest.traces.waterfall import format_duration


def register(commands) -> None:
    traces = command(commands, "traces", "list recent traces",
                     "List recent traces with a span of one service, newest first: trace id, "
                     "start, duration, spans, errors and the root span.", cmd_traces)
    traces.add_argument("--service", default="frontend", help="only traces with a span of this service")
    traces.add_argument("--operation", help="only traces with a span of this name, e.g. 'GET /dispatch' "
                                            "(default: any)")
    traces.add_argument("--min-duration", metavar="DURATION", type=duration,
                        help="only traces at least this long, a Go duration such as 500ms or 1.5s "
                             "(default: any)")
    traces.add_argument("--lookback", metavar="DURATION", default="1h", type=positive_duration,
                        help="how far back to search, e.g. 15m, 1h30m or 2h")
    traces.add_argument("--limit", metavar="N", type=at_least_one, default=20,
                        help="at most this many traces")
    traces.add_argument("--json", action="store_true", help="print JSON summaries instead of a table")
    url_option(traces)

    show = command(commands, "show", "draw one trace as a waterfall",
                   "Draw one trace as a waterfall: each span indented under its parent, with "
                   "its service, duration and a bar; * marks the critical path, ! an error.",
                   cmd_show)
    show.add_argument("trace_id", metavar="TRACE_ID", type=trace_id,
                      help="the trace's id, 1 to 32 hex digits (as `tracequest traces` lists it)")
    show.add_argument("--json", action="store_true", help="print the trace as the backend sends it (OTLP JSON)")
    show.add_argument("--width", metavar="COLUMNS", type=at_least_one,
                      help="width of the drawing (default: the terminal's width, at most 160)")
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colour the bars by service: auto means on a terminal and when "
                           "NO_COLOR is not set")
    url_option(show)


def cmd_traces(args) -> int:
    client = QueryClient(query_url(args))
    min_ms = parse_go_duration(args.min_duration) / 1e6 if args.min_duration else None
    traces = client.find_traces(args.service, operation=args.operation, min_duration_ms=min_ms,
                                lookback_s=parse_go_duration(args.lookback) / 1e9, limit=args.limit)
    if args.json:
        print(json.dumps([_summary(t) for t in traces], indent=2))
        return 0
    if not traces:
        print(f"No traces from service {args.service!r} in the last {args.lookback}"
              f" at {client.url}. Try: curl '{_frontend_hint()}/dispatch?customer=123'")
        return 0
    print(f"{'trace id':<32}  {'start (UTC)':<23}  {'duration':>9}  {'spans':>5}  {'errors':>6}  root")
    for t in traces:
        s = _summary(t)
        print(f"{t.trace_id:<32}  {s['start'][:23]:<23}  {format_duration(t.duration_ns):>9}  "
              f"{len(t):>5}  {len(t.errors):>6}  {t.root.service}: {t.root.name}")
    return 0


def _summary(trace) -> dict:
    return {
        "traceId": trace.trace_id,
        "start": format_rfc3339(trace.start_ns),
        "durationMs": round(trace.duration_ms, 3),
        "spans": len(trace),
        "errors": len(trace.errors),
        "services": trace.services,
        "root": {"service": trace.root.service, "name": trace.root.name},
    }


def _frontend_hint() -> str:
    lab = Lab.from_state()
    return lab.frontend_url if lab else f"http://127.0.0.1:{Ports().frontend}"


def cmd_show(args) -> int:
    client = QueryClient(query_url(args))
    try:
        trace = client.get_trace(args.trace_id)
    except TraceNotFound as exc:   # the same error, told what to do next
        raise QueryError(f"{exc}. List recent ones with `tracequest traces`.") from None
    if args.json:
        print(json.dumps(client.trace_json(args.trace_id), indent=2))
        return 0
    width = args.width or min(160, shutil.get_terminal_size((120, 40)).columns)
    print(trace.waterfall(width=width, color=use_color(args.color)))
    return 0
