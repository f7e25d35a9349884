"""The `tracequest` command: run the lab and read its traces from a terminal.

It behaves like the command-line tools learners already know: every command
and option has help with its default, a bad value is refused here with exit
code 2 before anything is sent anywhere, a closed pipe (``| head``) ends it
quietly, and colours and progress bars appear only on a terminal (never with
``NO_COLOR`` set).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

from . import __version__
from .client import QueryClient, QueryError, TraceNotFound, default_url
from .lab import BACKENDS, COLLECTOR_CONFIGS, STORAGES, TOPOLOGIES, Lab, LabError, LabSettings, find_home
from .lab_options import UsageError, add_knob_options, lab_settings
from .load import run_load
from .ports import Ports, PortInUse
from .timefmt import format_rfc3339, parse_go_duration
from .waterfall import format_duration

# 128 + SIGPIPE: what a shell reports for a program whose reader went away.
EXIT_BROKEN_PIPE = 141
_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")


def main(argv: list[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
        return code
    except BrokenPipeError:
        # The reader (`head`, a closed pager) has all it wanted: stop quietly.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UsageError as exc:
        print(f"{getattr(args, 'prog', 'tracequest')}: error: {exc}", file=sys.stderr)
        return 2
    except (LabError, PortInUse, QueryError) as exc:
        print(f"tracequest: {exc}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's last flush at exit cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured in tests)
        pass


# --- the parser -------------------------------------------------------------

class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless there is none or its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Help with defaults for every command, and usage errors on one line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tracequest",
                    description="Trace Quest: learn distributed tracing by doing. Start the lab "
                                "with `tracequest up`, send requests, read their traces.",
                    epilog="Each command has its own help: tracequest COMMAND --help")
    parser.add_argument("--version", action="version", version=f"tracequest {__version__}")
    # Subcommands are Parsers too (argparse uses the parent's class), quests' included.
    commands = parser.add_subparsers(metavar="COMMAND")
    _add_up(commands)
    _add_down(commands)
    _add_status(commands)
    _add_traces(commands)
    _add_show(commands)
    _add_load(commands)
    _add_backends(commands)

    from .quests.commands import register_commands

    register_commands(commands)

    from .pitfalls.doctor import register_commands as register_doctor

    register_doctor(commands)
    return parser


def _command(commands, name: str, help: str, description: str, func, **kwargs) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help, description=description, **kwargs)
    command.set_defaults(func=func, prog=command.prog)
    return command


def _add_up(commands) -> None:
    up = _command(commands, "up", "start the trace backend and the demo services",
                  "Start a trace backend and the four demo services in the background, then "
                  "print their URLs. Every option below can also be set by its environment "
                  "twin (shown in its help); the option wins. What `up` started is recorded "
                  "in .tracequest/lab.json, so every other command finds the lab, on whatever "
                  "ports.",
                  cmd_up, usage="%(prog)s [--backend NAME] [--collector-config NAME_OR_FILE] "
                        "[--storage memory|badger] [--topology single|scale-out] [KNOB ...]")
    up.add_argument("--backend", choices=BACKENDS,
                    help="embedded (the lab's small backend), jaeger (the real Jaeger binary), "
                         "collector (the lab's Collector in front of Jaeger), or fan-out (the "
                         "Collector sending every trace to Jaeger and Zipkin, and metrics "
                         "from spans to Prometheus when it is installed) (default: embedded, "
                         "or collector with --topology scale-out)")
    up.add_argument("--collector-config", type=_collector_config, metavar="NAME_OR_FILE",
                    help=f"what the collector backend loads: {', '.join(COLLECTOR_CONFIGS)} "
                         "(from compose/collector/), or the path of your own YAML file "
                         "(default: collector, or fan-out with --backend fan-out; only with "
                         "--backend collector or fan-out)")
    up.add_argument("--storage", choices=STORAGES,
                    help="where real Jaeger keeps spans: memory (the default; `down` forgets them) "
                         "or badger (files in .tracequest/badger, so traces survive `down` and "
                         "`up`); only with --backend jaeger, collector or fan-out")
    up.add_argument("--topology", choices=TOPOLOGIES, default="single",
                    help="single (one Collector, or none) or scale-out: an agent Collector on the "
                         "OTLP ports routing every trace by its id to one of two tail-sampling "
                         "gateways, then Jaeger (compose/collector/agent-trace-id.yaml and "
                         "gateway.yaml; implies --backend collector)")
    add_knob_options(up)


def _add_down(commands) -> None:
    _command(commands, "down", "stop everything `up` started",
             "Stop the demo services (they flush their spans first), then the backend. Only "
             "processes the lab itself started are signalled.", cmd_down)


def _add_status(commands) -> None:
    _command(commands, "status", "show what is running",
             "Show each program of the lab: whether it runs and answers, its pid and URL. "
             "Exit code 0 when everything is up, 1 otherwise.", cmd_status)


def _add_traces(commands) -> None:
    traces = _command(commands, "traces", "list recent traces",
                      "List recent traces with a span of one service, newest first: trace id, "
                      "start, duration, spans, errors and the root span.", cmd_traces)
    traces.add_argument("--service", default="frontend", help="only traces with a span of this service")
    traces.add_argument("--operation", help="only traces with a span of this name, e.g. 'GET /dispatch' "
                                            "(default: any)")
    traces.add_argument("--min-duration", metavar="DURATION", type=_duration,
                        help="only traces at least this long, a Go duration such as 500ms or 1.5s "
                             "(default: any)")
    traces.add_argument("--lookback", metavar="DURATION", default="1h", type=_positive_duration,
                        help="how far back to search, e.g. 15m, 1h30m or 2h")
    traces.add_argument("--limit", metavar="N", type=_at_least_one, default=20,
                        help="at most this many traces")
    traces.add_argument("--json", action="store_true", help="print JSON summaries instead of a table")
    _url_option(traces)


def _add_show(commands) -> None:
    show = _command(commands, "show", "draw one trace as a waterfall",
                    "Draw one trace as a waterfall: each span indented under its parent, with "
                    "its service, duration and a bar; * marks the critical path, ! an error.",
                    cmd_show)
    show.add_argument("trace_id", metavar="TRACE_ID", type=_trace_id,
                      help="the trace's id, 1 to 32 hex digits (as `tracequest traces` lists it)")
    show.add_argument("--json", action="store_true", help="print the trace as the backend sends it (OTLP JSON)")
    show.add_argument("--width", metavar="COLUMNS", type=_at_least_one,
                      help="width of the drawing (default: the terminal's width, at most 160)")
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colour the bars by service: auto means on a terminal and when "
                           "NO_COLOR is not set")
    _url_option(show)


def _add_load(commands) -> None:
    load = _command(commands, "load", "send many /dispatch requests and summarise latency",
                    "Send /dispatch requests to the demo's frontend, a few at a time, and print "
                    "their latency percentiles. Progress goes to stderr: a bar on a terminal, a "
                    "plain line every tenth of the requests otherwise.", cmd_load)
    load.add_argument("-n", "--requests", metavar="N", type=_at_least_one, default=50,
                      help="how many requests to send")
    load.add_argument("-c", "--concurrency", metavar="C", type=_at_least_one, default=4,
                      help="how many requests are in flight at once")
    load.add_argument("--frontend", metavar="URL", type=_http_url,
                      help="frontend URL (default: the running lab's)")


def _add_backends(commands) -> None:
    backends = _command(commands, "backends", "build or inspect the real Jaeger the jaeger and "
                                              "collector backends run",
                        "The jaeger and collector backends run the real Jaeger v2 binary (which "
                        "is also an OpenTelemetry Collector). It is compiled once from the Go "
                        "module proxy and cached per user. Without an action, shows the status.",
                        cmd_backends_status)
    actions = backends.add_subparsers(metavar="ACTION")
    build = _command(actions, "build", "build Jaeger once into the cache (a few minutes; needs Go)",
                     "Compile the real Jaeger from the Go module proxy into the per-user cache, "
                     "unless it is there already, and fetch the Zipkin server jar from Maven "
                     "Central. Progress goes to stderr; the paths are printed on stdout.",
                     cmd_backends_build)
    build.add_argument("--rebuild", action="store_true",
                       help="compile again even if a binary is cached")
    _command(actions, "status", "which binaries are built, their versions and paths",
             "Show each native backend program: its version, where it is (or the command that "
             "builds it) and the image Docker runs instead. Exit code 1 when one is missing.",
             cmd_backends_status)


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", type=_http_url,
                        help="query API URL (default: the running lab's, else $TRACEQUEST_QUERY_URL, "
                             "else http://127.0.0.1:16686)")


def _query_url(args) -> str:
    if getattr(args, "url", None):
        return args.url
    lab = Lab.from_state()
    return lab.query_url if lab else default_url()


# --- values checked before anything is sent ---------------------------------

def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _duration(text: str) -> str:
    """A Go duration, checked by the project's one parser and kept as typed (for messages)."""
    try:
        parse_go_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _positive_duration(text: str) -> str:
    if parse_go_duration(_duration(text)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is no time at all; give a duration above 0, e.g. 1h")
    return text.strip()


def _trace_id(text: str) -> str:
    """1-32 hex digits, as Jaeger takes them; padded to the 32 a trace id has."""
    if not _TRACE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a trace id; a trace id is 1 to 32 hex digits (0-9, a-f), "
            "e.g. 4bf92f3577b34da6a3ce929d0e0e4736")
    return text.lower().rjust(32, "0")


def _http_url(text: str) -> str:
    if not re.match(r"https?://[^/\s]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL like http://127.0.0.1:16686")
    return text.rstrip("/")


def _collector_config(text: str) -> str:
    if text in COLLECTOR_CONFIGS or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither one of {', '.join(COLLECTOR_CONFIGS)} nor a YAML file that exists")


def _check_distinct_ports(lab: Lab) -> None:
    """Two programs on one port cannot both start; say which options collide."""
    seen: dict[int, str] = {}
    for role, port in lab.used_ports().items():
        if port in seen:
            flags = [f"--{name.replace('_', '-')}-port" for name, value in lab.ports.as_dict().items()
                     if value == port]
            raise UsageError(f"port {port} is set for both {seen[port]} and {role} "
                             f"({' and '.join(flags)}); each lab port needs its own number")
        seen[port] = role


def _conflicts(running: LabSettings, wanted: LabSettings) -> list[str]:
    """Options asked for now that the running lab was started without."""
    default = LabSettings()
    found = [f"--{name.replace('_', '-')}" for name in ("backend", "collector_config", "storage", "topology")
             if getattr(wanted, name) != getattr(default, name)
             and getattr(wanted, name) != getattr(running, name)]
    found += [f"--{name.replace('_', '-')}-port" for name, port in wanted.ports.as_dict().items()
              if port != getattr(default.ports, name) and port != getattr(running.ports, name)]
    found += [f"{name}={value}" for name, value in wanted.service_env.items()
              if running.service_env.get(name) != value]
    found += [f"--{flag}" for flag, name in (("max-spans", "max_spans"), ("max-age", "max_age_s"))
              if getattr(wanted, name) is not None and getattr(wanted, name) != getattr(running, name)]
    return found


# --- lab --------------------------------------------------------------------

def cmd_up(args) -> int:
    settings = lab_settings(args)
    lab = Lab(settings, home=find_home())
    _check_distinct_ports(lab)
    running = Lab.from_state()
    if running and running.is_up():
        conflicts = _conflicts(running.settings, settings)
        if conflicts:
            raise LabError(f"the lab is already running with other settings (asked now: "
                           f"{'; '.join(conflicts)}); run `tracequest down` first.")
        print("The lab is already running.")
        _print_urls(running)
        return 0
    if settings.backend != "embedded":
        _ensure_programs(settings.backend)
    shape = ", scale-out topology" if settings.topology == "scale-out" else ""
    print(f"Starting the lab ({settings.backend} backend{shape})...")
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


def _ensure_programs(backend: str) -> None:
    """Build (or fetch) the real programs a backend runs on first use; then they are cached."""
    from .binaries import BuildError, ensure_collector, ensure_jaeger
    from .lab import COLLECTOR_BACKENDS

    try:
        ensure_jaeger(log=print)
        if backend in COLLECTOR_BACKENDS:
            ensure_collector(log=print)
    except BuildError as exc:
        raise LabError(str(exc)) from None
    if backend == "fan-out":
        _fetch_zipkin(print)


def _print_urls(lab: Lab) -> None:
    ports = lab.settings.ports
    print(f"  demo frontend   {lab.frontend_url}/")
    if "assistant" in lab.services:
        print(f"  assistant       POST {lab.url('assistant')}/ask")
    print(f"  traces (web)    {lab.query_url}/")
    print(f"  query API       {lab.query_url}/api/v3/services")
    print(f"  OTLP receivers  gRPC 127.0.0.1:{ports.otlp_grpc}, HTTP 127.0.0.1:{ports.otlp_http}")
    if lab.backend == "fan-out":
        print(f"  Zipkin (Lens)   {lab.url('zipkin')}/zipkin/")
    if lab.serves_metrics():
        print(f"  span metrics    {lab.url('spanmetrics')}/metrics")
        if lab.has_prometheus():
            print(f"  Prometheus      {lab.url('prometheus')}/")
        else:
            from .prometheus import INSTALL_COMMAND
            print(f"  (Prometheus is not installed, so nothing scrapes the span metrics; "
                  f"`{INSTALL_COMMAND}` adds it.)")
    if lab.settings.topology == "scale-out":
        gateways = ", ".join(f"{name} 127.0.0.1:{p[0]}" for name, p in lab.settings.gateway_ports.items())
        print(f"  scale-out       the agent on the OTLP ports routes each trace by id to {gateways}; "
              "they keep errors, traces over 500 ms and 10 % of the rest (compose/collector/"
              "gateway.yaml), so most quick requests never reach Jaeger")
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


# --- backends ---------------------------------------------------------------

def cmd_backends_build(args) -> int:
    """Build Jaeger and the lab's Collector, fetch Zipkin; print each one's path."""
    from . import binaries

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    programs = ((f"Jaeger {binaries.JAEGER_VERSION}", binaries.find_jaeger,
                 binaries.build_jaeger, binaries.ensure_jaeger),
                (f"the Collector {binaries.COLLECTOR_VERSION}", binaries.find_collector,
                 binaries.build_collector, binaries.ensure_collector))
    try:
        for name, find, build, ensure in programs:
            if args.rebuild:
                path = build(log=log)
            else:
                if find() is not None:
                    log(f"{name} is already built; `--rebuild` compiles it again.")
                path = ensure(log=log)
            print(path)
    except binaries.BuildError as exc:
        raise LabError(str(exc)) from None
    return _fetch_zipkin(log)


def _fetch_zipkin(log) -> int:
    """Fetch the Zipkin jar too (a download: --rebuild leaves it); fail when no Java can run it."""
    from .zipkin import ZIPKIN_VERSION, ZipkinError, ensure_zipkin, find_zipkin, java_command

    if find_zipkin() is not None:
        log(f"Zipkin {ZIPKIN_VERSION} is already fetched.")
    try:
        print(ensure_zipkin(log=log))
        java_command()
    except ZipkinError as exc:
        raise LabError(str(exc)) from None
    return 0


def cmd_backends_status(args) -> int:
    from .binaries import cache_dir, collector_missing_reason, jaeger_missing_reason, status, status_line
    from .zipkin import status_entry as zipkin_status, zipkin_missing_reason

    entries = [*status().values(), zipkin_status()]
    print(f"Native backend programs (cache: {cache_dir()}):")
    for entry in entries:
        print(f"  {status_line(entry)}")
        detail = f"{entry['note']}; " if entry["path"] else ""
        print(f"  {'':<10} {detail}in Docker: {entry['image']}")
    missing = {entry["name"] for entry in entries if not entry["path"]}
    reasons = {"jaeger": jaeger_missing_reason, "collector": collector_missing_reason,
               "zipkin": zipkin_missing_reason}
    for name in reasons:
        if name in missing:
            print(reasons[name]())
    return 1 if missing else 0


# --- traces -----------------------------------------------------------------

def cmd_traces(args) -> int:
    client = QueryClient(_query_url(args))
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
    client = QueryClient(_query_url(args))
    try:
        trace = client.get_trace(args.trace_id)
    except TraceNotFound as exc:
        raise QueryError(f"{exc}. List recent ones with `tracequest traces`.") from None
    if args.json:
        print(json.dumps(client.trace_json(args.trace_id), indent=2))
        return 0
    width = args.width or min(160, shutil.get_terminal_size((120, 40)).columns)
    print(trace.waterfall(width=width, color=use_color(args.color)))
    return 0


def use_color(choice: str = "auto", stream=None) -> bool:
    """Colour on a terminal unless NO_COLOR is set (https://no-color.org); always/never decide."""
    if choice != "auto":
        return choice == "always"
    stream = stream or sys.stdout
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")


def cmd_load(args) -> int:
    url = args.frontend
    if not url:
        lab = Lab.from_state()
        if lab is None:
            raise LabError("the lab is not running; start it with `make up` or pass --frontend URL.")
        url = lab.frontend_url
    print(f"Sending {args.requests} requests to {url}/dispatch, {args.concurrency} at a time", flush=True)
    result = run_load(url, args.requests, args.concurrency)
    print(result.summary())
    return 0 if not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
