"""The `tracequest` command: run the lab and read its traces from a terminal."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from . import __version__
from .client import QueryClient, QueryError, TraceNotFound, default_url
from .lab import BACKENDS, COLLECTOR_CONFIGS, Lab, LabError, find_home
from .load import run_load
from .ports import PortInUse
from .timefmt import format_rfc3339, parse_go_duration
from .waterfall import format_duration


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except (LabError, PortInUse, QueryError) as exc:
        print(f"tracequest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracequest", description="Trace Quest: learn distributed tracing by doing.")
    parser.add_argument("--version", action="version", version=f"tracequest {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    up = commands.add_parser("up", help="start the trace backend and the demo services")
    up.add_argument("--backend", default="embedded", choices=BACKENDS,
                    help="embedded (default), jaeger (the real Jaeger binary), or collector "
                         "(the Collector pipeline in front of Jaeger)")
    up.add_argument("--collector-config", default="collector", metavar="NAME_OR_FILE",
                    help=f"what the collector backend loads: {', '.join(COLLECTOR_CONFIGS)} "
                         "(from compose/collector/), or the path of your own YAML file")
    up.add_argument("--fix-db-query-delay", metavar="DURATION", help="customer's database delay, e.g. 5ms (default 300ms)")
    up.add_argument("--fix-disable-db-conn-mutex", action="store_true", help="remove customer's single-connection lock")
    up.add_argument("--fix-route-worker-pool-size", metavar="N", type=int, help="frontend's route workers (default 3)")
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop everything `up` started")
    down.set_defaults(func=cmd_down)

    status = commands.add_parser("status", help="show what is running")
    status.set_defaults(func=cmd_status)

    traces = commands.add_parser("traces", help="list recent traces")
    traces.add_argument("--service", default="frontend")
    traces.add_argument("--operation")
    traces.add_argument("--min-duration", metavar="DURATION", help="e.g. 500ms or 1.5s")
    traces.add_argument("--lookback", metavar="DURATION", default="1h", help="how far back to search (default 1h)")
    traces.add_argument("--limit", type=int, default=20)
    traces.add_argument("--json", action="store_true", help="print OTLP-style JSON summaries")
    _url_option(traces)
    traces.set_defaults(func=cmd_traces)

    show = commands.add_parser("show", help="draw one trace as a waterfall")
    show.add_argument("trace_id")
    show.add_argument("--json", action="store_true", help="print the trace as OTLP JSON")
    show.add_argument("--width", type=int, default=None)
    _url_option(show)
    show.set_defaults(func=cmd_show)

    load = commands.add_parser("load", help="send many /dispatch requests and summarise latency")
    load.add_argument("-n", "--requests", type=int, default=50)
    load.add_argument("-c", "--concurrency", type=int, default=4)
    load.add_argument("--frontend", metavar="URL", help="frontend URL (default: the running lab's)")
    load.set_defaults(func=cmd_load)

    from .quests.commands import register_commands

    register_commands(commands)
    return parser


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="query API URL (default: the running lab's, or $TRACEQUEST_QUERY_URL)")


def _query_url(args) -> str:
    if getattr(args, "url", None):
        return args.url
    lab = Lab.from_state()
    return lab.query_url if lab else default_url()


# --- lab --------------------------------------------------------------------

def cmd_up(args) -> int:
    env = {}
    if args.fix_db_query_delay:
        env["TQ_FIX_DB_QUERY_DELAY"] = args.fix_db_query_delay
    if args.fix_disable_db_conn_mutex:
        env["TQ_FIX_DISABLE_DB_CONN_MUTEX"] = "1"
    if args.fix_route_worker_pool_size is not None:
        env["TQ_FIX_ROUTE_WORKER_POOL_SIZE"] = str(args.fix_route_worker_pool_size)
    running = Lab.from_state()
    if running and running.is_up():
        if env and env != running.service_env:
            raise LabError("the lab is already running with other settings; run `tracequest down` first.")
        print("The lab is already running.")
        _print_urls(running)
        return 0
    if args.backend != "embedded":
        _ensure_jaeger()
    lab = Lab(home=find_home(), backend=args.backend, service_env=env,
              collector_config=args.collector_config)
    print(f"Starting the lab ({args.backend} backend)...")
    lab.up()
    print("The lab is up.")
    _print_urls(lab)
    print("\nNext: send a request and read its trace:")
    print(f"  curl '{lab.frontend_url}/dispatch?customer=123'")
    print("  tracequest traces")
    print("  tracequest show <trace-id>")
    if not shutil.which("tracequest"):
        venv = Path(sys.executable).parent
        print(f"(`tracequest` is in {venv}/: run `. {venv}/activate` to type it without the path.)")
    return 0


def _ensure_jaeger() -> None:
    """Build the real Jaeger on first use; it takes a few minutes once, then is cached."""
    from .binaries import JaegerBuildError, ensure_jaeger

    try:
        ensure_jaeger(log=print)
    except JaegerBuildError as exc:
        raise LabError(str(exc)) from None


def _print_urls(lab: Lab) -> None:
    print(f"  demo frontend   {lab.frontend_url}/")
    print(f"  traces (web)    {lab.query_url}/")
    print(f"  query API       {lab.query_url}/api/v3/services")
    print(f"  OTLP receivers  gRPC 127.0.0.1:{lab.ports.otlp_grpc}, HTTP 127.0.0.1:{lab.ports.otlp_http}")
    print(f"  logs            {lab.log_dir}/")


def cmd_down(args) -> int:
    lab = Lab.from_state()
    if lab is None:
        print("No lab is running here (nothing recorded in "
              f"{find_home()}).")
        return 0
    stopped = lab.down()
    print(f"Stopped: {', '.join(stopped) or 'nothing was running'}.")
    return 0


def cmd_status(args) -> int:
    lab = Lab.from_state()
    if lab is None:
        print("The lab is not running. Start it with `make up` (or `tracequest up`).")
        return 1
    healthy = True
    for name, info in lab.status().items():
        state = "up" if info["healthy"] else ("not answering" if info["running"] else "stopped")
        healthy &= info["healthy"]
        print(f"  {name:<9} {state:<14} pid {info['pid'] or '-':<8} {info['url']}")
    if not healthy:
        print(f"Something is not running; see the logs in {lab.log_dir}/ or restart with "
              "`tracequest down && tracequest up`.")
    return 0 if healthy else 1


# --- traces -----------------------------------------------------------------

def cmd_traces(args) -> int:
    client = QueryClient(_query_url(args))
    min_ms = _duration_ms(args.min_duration, "--min-duration") if args.min_duration else None
    lookback_s = _duration_ms(args.lookback, "--lookback") / 1000
    traces = client.find_traces(args.service, operation=args.operation, min_duration_ms=min_ms,
                                lookback_s=lookback_s, limit=args.limit)
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
    return lab.frontend_url if lab else "http://127.0.0.1:8080"


def _duration_ms(text: str, option: str) -> float:
    try:
        return parse_go_duration(text) / 1e6
    except ValueError as exc:
        raise LabError(f"{option}: {exc}") from None


def cmd_show(args) -> int:
    client = QueryClient(_query_url(args))
    try:
        trace = client.get_trace(args.trace_id)
    except TraceNotFound as exc:
        raise QueryError(f"{exc}. List recent ones with `tracequest traces`.") from None
    if args.json:
        print(json.dumps(client.trace_json(args.trace_id), indent=2))
        return 0
    width = args.width or min(160, shutil.get_terminal_size((120, 40)).columns)
    print(trace.waterfall(width=width, color=sys.stdout.isatty()))
    return 0


def cmd_load(args) -> int:
    if args.requests < 1 or args.concurrency < 1:
        raise LabError("--requests and --concurrency must be at least 1")
    url = args.frontend
    if not url:
        lab = Lab.from_state()
        if lab is None:
            raise LabError("the lab is not running; start it with `make up` or pass --frontend URL.")
        url = lab.frontend_url
    print(f"Sending {args.requests} requests to {url}/dispatch, {args.concurrency} at a time")
    result = run_load(url, args.requests, args.concurrency)
    print(result.summary())
    return 0 if not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
