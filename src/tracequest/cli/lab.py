"""`tracequest up`, `down`, `status` and `load`: start the lab, stop it, look at it, send it load."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tracequest.cli.backends import provide
from tracequest.cli.options import UsageError, add_knob_options, lab_settings
from tracequest.cli.parser import at_least_one, collector_config, command, http_url
from tracequest.errors import LabError
from tracequest.lab import Lab, LabSettings, find_home
from tracequest.lab.load import run_load
from tracequest.lab.settings import BACKEND_PROGRAMS, BACKENDS, COLLECTOR_CONFIGS, STORAGES, TOPOLOGIES
from tracequest.programs.cache import Program
from tracequest.programs.prometheus import INSTALL_COMMAND
from tracequest.programs.registry import BY_NAME


def register(commands) -> None:
    """`up`, `down` and `status` (`load` is listed after the traces: :func:`register_load`)."""
    up = command(commands, "up", "start the trace backend and the demo services",
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
    up.add_argument("--collector-config", type=collector_config, metavar="NAME_OR_FILE",
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

    command(commands, "down", "stop everything `up` started",
            "Stop the demo services (they flush their spans first), then the backend. Only "
            "processes the lab itself started are signalled.", cmd_down)
    command(commands, "status", "show what is running",
            "Show each program of the lab: whether it runs and answers, its pid and URL. "
            "Exit code 0 when everything is up, 1 otherwise.", cmd_status)


def register_load(commands) -> None:
    load = command(commands, "load", "send many /dispatch requests and summarise latency",
                   "Send /dispatch requests to the demo's frontend, a few at a time, and print "
                   "their latency percentiles. Progress goes to stderr: a bar on a terminal, a "
                   "plain line every tenth of the requests otherwise.", cmd_load)
    load.add_argument("-n", "--requests", metavar="N", type=at_least_one, default=50,
                      help="how many requests to send")
    load.add_argument("-c", "--concurrency", metavar="C", type=at_least_one, default=4,
                      help="how many requests are in flight at once")
    load.add_argument("--frontend", metavar="URL", type=http_url,
                      help="frontend URL (default: the running lab's)")


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


def _ensure_programs(backend: str) -> None:
    """Build (or fetch) the real programs a backend runs on first use; then they are cached.

    A fetched jar is named with its path, as `backends build` names it: what `up` has always
    printed for Zipkin. A program that is here but cannot run stops `up` before anything starts.
    """
    for program in _programs_for(backend):
        if program.artifact == "jar":
            print(provide(program, log=print))
        else:
            program.ensure(log=print)
        if program.check_runnable is not None:
            program.check_runnable()


def _programs_for(backend: str) -> list[Program]:
    """The real programs ``backend`` runs, in build order (the lab's settings name them)."""
    return [BY_NAME[name] for name in BACKEND_PROGRAMS[backend]]


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
