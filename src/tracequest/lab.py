"""Starting and stopping the lab: a trace backend and the demo services.

The lab runs as background processes so `make up` returns to the prompt. What
was started is written to ``<home>/lab.json``; `down` and `status` read it, so
they work from any later shell.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from . import procs
from .paths import RepoNotFound, compose_file
from .ports import HOST, Ports, check_free
from .timefmt import format_go_duration

SERVICES = ("customer", "driver", "route", "model", "assistant", "frontend")  # downstream first
# The model server stands for a hosted LLM provider: untraced, as a provider is to its callers.
UNTRACED = ("model",)
BACKENDS = ("embedded", "jaeger", "collector", "fan-out")
# Backends with the lab's Collector in front of Jaeger (it takes the lab's OTLP ports).
COLLECTOR_BACKENDS = ("collector", "fan-out")
COLLECTOR_CONFIGS = ("collector", "tail-sampling", "pii", "fan-out", "spanmetrics")
# Pipelines that serve metrics from spans: the lab runs Prometheus beside them when it can.
METRICS_CONFIGS = ("fan-out", "spanmetrics")
# Where real Jaeger keeps spans: memory (forgotten on `down`) or Badger files under <home>/badger.
STORAGES = ("memory", "badger")
# How many collectors stand before Jaeger: one, or an agent routing by trace id to
# two tail-sampling gateways (tracequest.scale_out; compose/collector/agent-trace-id.yaml).
TOPOLOGIES = ("single", "scale-out")
STATE_FILE = "lab.json"
HOME_DIR = ".tracequest"


class LabError(RuntimeError):
    """Something a learner must fix before the lab can run; the message says what."""


@dataclass
class Process:
    """One program of the lab and how to tell that it is ready."""

    name: str
    argv: list[str]
    health_url: str
    env: dict = field(default_factory=dict)
    # A collector's OTLP/HTTP port answers GET with 405: any answer means ready.
    any_answer_is_healthy: bool = False
    # Seconds it may take to answer, when longer than the lab's own timeout (a JVM).
    start_timeout: float = 0.0

    @property
    def is_service(self) -> bool:
        return self.name in SERVICES

    def is_healthy(self) -> bool:
        return procs.answers_http(self.health_url, any_status=self.any_answer_is_healthy)


@dataclass(frozen=True)
class LabSettings:
    """Everything that decides what a lab runs; written to lab.json and read back whole.

    Change one with ``dataclasses.replace(settings, backend="jaeger")``.
    """

    backend: str = "embedded"
    collector_config: str = "collector"
    ports: Ports = field(default_factory=Ports)
    services: tuple[str, ...] = SERVICES
    # Knob values for the services, by environment twin (TQ_FIX_DB_QUERY_DELAY=5ms).
    service_env: Mapping[str, str] = field(default_factory=dict)
    # Settings for the backend programs, e.g. TQ_TAIL_DECISION_WAIT for a collector.
    backend_env: Mapping[str, str] = field(default_factory=dict)
    # The embedded backend's retention bound; None leaves its own default.
    max_spans: int | None = None
    max_age_s: float | None = None
    # Real Jaeger's storage (STORAGES); the embedded backend has its own SQLite file.
    storage: str = "memory"
    topology: str = "single"
    # Scale-out only: each gateway's ports (OTLP gRPC, OTLP HTTP, metrics, health),
    # chosen free when the lab starts and kept here so `status` and `down` find them.
    gateway_ports: Mapping[str, list[int]] = field(default_factory=dict)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise LabError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.collector_config not in COLLECTOR_CONFIGS and not Path(self.collector_config).is_file():
            raise LabError(f"unknown collector config {self.collector_config!r}; choose one of: "
                           f"{', '.join(COLLECTOR_CONFIGS)}, or give the path of a YAML file")
        if self.storage not in STORAGES:
            raise LabError(f"unknown storage {self.storage!r}; choose one of: {', '.join(STORAGES)}")
        if self.storage != "memory" and self.backend == "embedded":
            raise LabError(f"storage {self.storage!r} is for real Jaeger; the embedded backend always "
                           "keeps its spans in .tracequest/spans.db. Add --backend jaeger (or collector, fan-out).")
        if self.topology not in TOPOLOGIES:
            raise LabError(f"unknown topology {self.topology!r}; choose one of: {', '.join(TOPOLOGIES)}")
        if self.topology == "scale-out" and (self.backend != "collector"
                                             or self.collector_config != "collector"):
            raise LabError("the scale-out topology puts an agent and two gateway collectors in front "
                           "of real Jaeger, with their own configs: use it with --backend collector "
                           "and no --collector-config")
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise LabError(f"unknown service(s) {sorted(unknown)}; the demo has {', '.join(SERVICES)}")
        _check_knob_names(self.service_env)
        # Keep the start order (downstream first) whatever order was given.
        object.__setattr__(self, "services", tuple(s for s in SERVICES if s in self.services))
        object.__setattr__(self, "collector_config", str(self.collector_config))
        object.__setattr__(self, "service_env", dict(self.service_env))
        object.__setattr__(self, "backend_env", dict(self.backend_env))
        object.__setattr__(self, "gateway_ports", {k: list(v) for k, v in self.gateway_ports.items()})

    def as_state(self) -> dict:
        state = asdict(self)
        state["services"] = list(self.services)
        return state

    @classmethod
    def from_state(cls, state: Mapping) -> LabSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in state.items() if k in known}
        port_names = {f.name for f in fields(Ports)}
        values["ports"] = Ports(**{k: v for k, v in (state.get("ports") or {}).items() if k in port_names})
        values["services"] = tuple(values.get("services", SERVICES))
        return cls(**values)


def _check_knob_names(env: Mapping[str, str]) -> None:
    """A misspelt TQ_* name would be ignored by the services: refuse it here, naming the nearest."""
    from services.common.knobs import KnobError, check_env_names

    try:
        check_env_names(env)
    except KnobError as exc:
        raise LabError(str(exc)) from None


def find_home(start: Path | None = None) -> Path:
    """The lab's state folder: $TRACEQUEST_HOME, or the nearest .tracequest upwards.

    Searching upwards lets `tracequest status` work from notebooks/ or labs/.
    """
    if os.environ.get("TRACEQUEST_HOME"):
        return Path(os.environ["TRACEQUEST_HOME"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / HOME_DIR / STATE_FILE).exists():
            return folder / HOME_DIR
    from .paths import find_repo_root

    root = find_repo_root(here)
    if root is not None and root in (here, *here.parents):
        return root / HOME_DIR
    return here / HOME_DIR


class Lab:
    """The lab in one folder: its processes, ports, logs and spans."""

    def __init__(self, settings: LabSettings | None = None, home: Path | str | None = None):
        self.settings = settings or LabSettings()
        self.home = Path(home) if home else find_home()

    def __repr__(self) -> str:
        return f"<Lab {self.backend} at {self.home}>"

    # --- the settings, by name ------------------------------------------------

    @property
    def ports(self) -> Ports:
        return self.settings.ports

    @property
    def backend(self) -> str:
        return self.settings.backend

    @property
    def services(self) -> tuple[str, ...]:
        return self.settings.services

    @property
    def service_env(self) -> dict:
        return dict(self.settings.service_env)

    @property
    def collector_config(self) -> str:
        return self.settings.collector_config

    # --- where things are ---------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def url(self, name: str) -> str:
        return f"http://{HOST}:{getattr(self.ports, name)}"

    @property
    def query_url(self) -> str:
        return self.url("query")

    @property
    def frontend_url(self) -> str:
        return self.url("frontend")

    @property
    def otlp_grpc_endpoint(self) -> str:
        return self.url("otlp_grpc")

    @classmethod
    def from_state(cls, home: Path | str | None = None) -> Lab | None:
        """The lab recorded in a home folder, or None if none was started there."""
        home = Path(home) if home else find_home()
        try:
            state = json.loads((home / STATE_FILE).read_text())
            return cls(LabSettings.from_state(state.get("settings") or {}), home)
        except (OSError, ValueError, TypeError, AttributeError, LabError):
            return None

    # --- the programs -------------------------------------------------------

    def processes(self) -> list[Process]:
        return [*self._backend_processes(), *(self._service_process(n) for n in self.services)]

    def used_ports(self) -> dict[str, int]:
        """The ports this lab's programs listen on, by role."""
        p = self.ports
        used = {name: getattr(p, name) for name in self.services}
        used.update({"OTLP gRPC": p.otlp_grpc, "OTLP HTTP": p.otlp_http, "query API": p.query})
        if self.backend != "embedded":
            used.update({"Jaeger query gRPC": p.jaeger_query_grpc, "Jaeger metrics": p.jaeger_metrics})
        if self.backend in COLLECTOR_BACKENDS:
            used.update({"Jaeger OTLP gRPC": p.jaeger_otlp_grpc, "Jaeger OTLP HTTP": p.jaeger_otlp_http,
                         "collector metrics": p.collector_metrics,
                         "collector health": p.collector_health})
        if self.backend == "fan-out":
            used["Zipkin"] = p.zipkin
        for name, ports in self._gateway_ports().items():
            used.update({f"{name} {role}": port for role, port in
                         zip(("OTLP gRPC", "OTLP HTTP", "metrics", "health"), vars(ports).values())})
        if self.serves_metrics():
            used["span metrics"] = p.spanmetrics
            if self.has_prometheus():
                used["Prometheus"] = p.prometheus
        return used

    def _backend_processes(self) -> list[Process]:
        if self.settings.topology == "scale-out":
            return [self._jaeger_process(), *self._scale_out_processes()]
        if self.backend == "embedded":
            return [self._embedded_process()]
        if self.backend == "jaeger":
            return [self._jaeger_process()]
        # every destination first, the collector that feeds them last
        zipkin = [self._zipkin_process()] if self.backend == "fan-out" else []
        metrics = ([self._prometheus_process()]
                   if self.serves_metrics() and self.has_prometheus() else [])
        return [self._jaeger_process(), *zipkin, *metrics, self._collector_process()]

    def _embedded_process(self) -> Process:
        p, s = self.ports, self.settings
        argv = [sys.executable, "-m", "tracequest.backend", "--db", str(self.home / "spans.db"),
                "--grpc-port", str(p.otlp_grpc), "--http-port", str(p.otlp_http),
                "--query-port", str(p.query)]
        if s.max_spans is not None:
            argv += ["--max-spans", str(s.max_spans)]
        if s.max_age_s is not None:
            argv += ["--max-age", format_go_duration(round(s.max_age_s * 1e9))]
        return Process("backend", argv, f"{self.query_url}/api/v3/services")

    def _jaeger_process(self) -> Process:
        """Real Jaeger with the config compose/ mounts, its listeners moved to our ports."""
        from .binaries import jaeger_env

        env = jaeger_env(self.ports, behind_collector=self.backend in COLLECTOR_BACKENDS)
        config = "config.yaml"
        if self.settings.storage == "badger":   # files that outlive `down`, in the lab's home
            config = "config-badger.yaml"
            env["TQ_JAEGER_BADGER_DIR"] = str((self.home / "badger").resolve())
        argv = [str(_jaeger_binary()), "--config", str(_compose_file("jaeger", config))]
        return Process("jaeger", argv, f"{self.query_url}/api/v3/services", env)

    def _collector_process(self) -> Process:
        """The lab's own Collector running a pipeline from compose/collector/ (or a learner's file)."""
        from .binaries import collector_env

        name = self._pipeline()
        argv = [str(_collector_binary()), "--config"]
        if name in COLLECTOR_CONFIGS:   # ours carry the health_check extension
            argv.append(str(_compose_file("collector", f"{name}.yaml")))
            return Process("collector", argv, f"{self.url('collector_health')}/",
                           collector_env(self.ports))
        # A learner's own file, e.g. a quest's collector.yaml: ready once OTLP/HTTP answers.
        argv.append(str(Path(name).resolve()))
        return Process("collector", argv, f"{self.url('otlp_http')}/v1/traces",
                       collector_env(self.ports), any_answer_is_healthy=True)

    def _scale_out_processes(self) -> list[Process]:
        """Two tail-sampling gateways, then the agent on the lab's OTLP ports routing to them by trace id."""
        from .scale_out import CollectorPorts, collector_programs

        return collector_programs(_collector_binary(), "trace-id", CollectorPorts.of_lab(self.ports),
                                  self._gateway_ports(), f"{HOST}:{self.ports.jaeger_otlp_grpc}")

    def _gateway_ports(self):
        """Each gateway's ports, as recorded in the settings (``choose_gateway_ports`` fills them)."""
        from .scale_out import CollectorPorts

        return {name: CollectorPorts(*ports) for name, ports in self.settings.gateway_ports.items()}

    def choose_gateway_ports(self) -> None:
        """Give a scale-out lab's gateways free ports, once; other labs have no gateways."""
        from .scale_out import GATEWAYS, CollectorPorts

        if self.settings.topology != "scale-out" or self.settings.gateway_ports:
            return
        taken = set(self.ports.as_dict().values())
        chosen = {name: list(vars(CollectorPorts.free(taken)).values()) for name in GATEWAYS}
        self.settings = replace(self.settings, gateway_ports=chosen)

    def _pipeline(self) -> str:
        """The collector's config: a name from compose/collector/, or a learner's file."""
        if self.backend == "fan-out" and self.collector_config == "collector":
            return "fan-out"   # each backend's default pipeline
        return self.collector_config

    def serves_metrics(self) -> bool:
        """A pipeline that derives metrics from spans; a learner's file under fan-out may too."""
        return self.backend == "fan-out" or (
            self.backend == "collector" and self._pipeline() in METRICS_CONFIGS)

    def _zipkin_process(self) -> Process:
        """The real Zipkin server (its jar from Maven Central), with its Lens UI."""
        from .zipkin import START_TIMEOUT, ZipkinError, find_zipkin, zipkin_missing_reason, zipkin_process

        if find_zipkin() is None:
            raise LabError("the fan-out backend runs the real Zipkin server, which is not "
                           "fetched yet. " + zipkin_missing_reason())
        try:
            argv, env, ready_url = zipkin_process(self.ports)
        except ZipkinError as exc:   # no Java, or one too old to run it
            raise LabError(str(exc)) from None
        return Process("zipkin", argv, ready_url, env, start_timeout=START_TIMEOUT)

    def has_prometheus(self) -> bool:
        from .prometheus import find_prometheus

        return find_prometheus() is not None

    def _prometheus_process(self) -> Process:
        """Prometheus scraping the span metrics (only when it is installed)."""
        from .prometheus import prometheus_process

        argv, env, ready_url = prometheus_process(self.ports, self.home)
        return Process("prometheus", argv, ready_url, env)

    def _service_process(self, name: str) -> Process:
        argv = [sys.executable, "-m", f"services.{name}"]
        if name not in UNTRACED:
            argv.insert(0, _instrument_command())
        return Process(name, argv, f"{self.url(name)}/health", self._service_env(name))

    def _service_env(self, name: str) -> dict:
        """A service's environment: where to export, and its knobs by their environment twins."""
        from services.common.knobs import knob

        env = {
            "OTEL_SERVICE_NAME": name,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_grpc_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "health",
            # Export every 200 ms so a learner's trace is queryable almost at once.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PYTHONUNBUFFERED": "1",
        }
        for service in SERVICES:
            env[knob(f"{service}-port").env] = str(getattr(self.ports, service))
            if service != "frontend":
                env[knob(f"{service}-url").env] = self.url(service)
        if name == "assistant":
            # The GenAI instrumentation's newest conventions (gen_ai.provider.name, ...).
            env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        env.update(self.settings.service_env)
        return env

    def _environment(self, proc: Process) -> dict:
        """What a program runs with: backends do not inherit a learner's OTEL_* settings."""
        if proc.is_service:
            return procs.environment(proc.env)
        return procs.environment({**proc.env, **self.settings.backend_env}, scrub=True)

    # --- up, down, status ---------------------------------------------------

    def status(self) -> dict[str, dict]:
        """Per process: pid, whether it runs, whether it answers its health check."""
        children = self._recorded_children()
        report = {}
        for proc in self.processes():
            child = children.get(proc.name)
            alive = child is not None and child.is_running()
            report[proc.name] = {"pid": child.pid if child else None, "running": alive,
                                 "healthy": alive and proc.is_healthy(),
                                 "url": self._display_url(proc)}
        return report

    def _display_url(self, proc: Process) -> str:
        if proc.is_service:
            return self.url(proc.name)
        if proc.name.startswith("gateway-"):
            ports = self._gateway_ports()[proc.name]
            return f"OTLP 127.0.0.1:{ports.otlp_grpc} (gRPC); tail sampling, then Jaeger"
        if proc.name in ("collector", "agent"):
            return f"OTLP 127.0.0.1:{self.ports.otlp_grpc} (gRPC), 127.0.0.1:{self.ports.otlp_http} (HTTP)"
        if proc.name == "zipkin":
            return f"{self.url('zipkin')}/zipkin/"
        if proc.name == "prometheus":
            return self.url("prometheus")
        return self.query_url

    def is_up(self) -> bool:
        return all(s["healthy"] for s in self.status().values())

    def up(self, timeout: float = 60.0, log=print) -> bool:
        """Start everything; returns False if it was already running (a no-op)."""
        if self.state_path.exists():
            if self.is_up():
                return False
            log("Found a lab that is only partly running; restarting it.")
            self.down(log=lambda *_: None)
        self.choose_gateway_ports()
        check_free(self.used_ports())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        children: dict[str, procs.Child] = {}
        backends = self._backend_processes()
        services = [self._service_process(n) for n in self.services]
        try:
            # Each group starts at once, then is waited for: the backends must
            # answer before a service sends spans, but within a group nothing
            # waits on anything else, and a slow starter (Zipkin's JVM) only
            # costs its own start-up time.
            for group in (backends, services):
                for proc in group:
                    children[proc.name] = procs.start(
                        proc.name, proc.argv, self.log_dir / f"{proc.name}.log",
                        env=self._environment(proc))
                    self._write_state(children)
                wait_until_healthy(group, children, timeout)
        except BaseException:
            self.down(log=lambda *_: None)
            raise
        return True

    def stop_services(self, timeout: float = 10.0, log=print) -> list[str]:
        """Stop only the demo services (they flush their spans); the backend keeps running."""
        children = self._recorded_children(log)
        return self._stop([children[n] for n in reversed(SERVICES) if n in children], timeout, log)

    def down(self, timeout: float = 10.0, log=print) -> list[str]:
        """Stop services first (they flush spans to the backend), then the backends, newest first."""
        children = self._recorded_children(log)
        services = [children[n] for n in reversed(SERVICES) if n in children]
        stopped = self._stop(services, timeout, log)
        for name in reversed(list(children)):  # the collector before Jaeger
            if name not in SERVICES:
                stopped += self._stop([children[name]], timeout, log)
        self.state_path.unlink(missing_ok=True)
        return stopped

    def _stop(self, group: list[procs.Child], timeout: float, log) -> list[str]:
        """SIGTERM a group together, then wait for each; kill what does not stop in time."""
        running = [c for c in group if c.is_running()]
        for child in running:
            child.terminate()
        for child in running:
            if not child.wait_stopped(timeout):
                log(f"{child.name} did not stop within {timeout:.0f}s; killed it.")
        return [c.name for c in running]

    # --- helpers ------------------------------------------------------------

    def _write_state(self, children: dict[str, procs.Child]) -> None:
        state = {"settings": self.settings.as_state(),
                 "processes": {name: c.ident.as_state() for name, c in children.items()},
                 "started_at": time.time()}
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def _recorded_children(self, log=lambda *_: None) -> dict[str, procs.Child]:
        """The programs lab.json names that are still the very processes the lab started.

        A pid whose process has another start time was reused by the system for
        another program (after a reboot, say): it is left alone, and said so.
        """
        try:
            recorded = json.loads(self.state_path.read_text()).get("processes", {})
        except (OSError, ValueError, AttributeError):
            return {}
        children = {}
        for name, value in recorded.items():
            ident = procs.ProcessId.from_state(value)
            if ident is None:
                log(f"{name}: lab.json records no start time for it, so it cannot be told from "
                    f"another program; left it alone (pid {value!r}).")
                continue
            if ident.is_running():
                children[name] = procs.Child(name, ident, self.log_dir / f"{name}.log")
                continue
            stranger = procs.ProcessId.of(ident.pid)
            if stranger is not None:
                log(f"{name} had already stopped; pid {ident.pid} now belongs to another program, "
                    f"{stranger.describe()}, started after the lab: left it alone.")
        return children


def wait_until_healthy(group: list[Process], children: dict[str, procs.Child],
                       timeout: float) -> None:
    """Wait until every program of a group answers; the first one to exit fails at once.

    Each answer gives the rest ``timeout`` seconds more, as waiting one by
    one did: on a busy machine a group shares the CPU while it starts.
    Raises LabError naming the program, with the tail of its log.
    """
    waiting = {proc.name: proc for proc in group}
    deadlines = {proc.name: time.monotonic() + max(timeout, proc.start_timeout)
                 for proc in group}

    def all_ready() -> bool:
        for name, proc in list(waiting.items()):
            if proc.is_healthy():
                del waiting[name]
                for other in waiting:
                    deadlines[other] = max(deadlines[other], time.monotonic() + timeout)
            elif not children[name].is_running():
                raise LabError(f"{name} exited during start-up.\n{log_tail(children[name])}")
        late = [n for n in waiting if time.monotonic() > deadlines[n]]
        if late:
            proc = waiting[late[0]]
            raise LabError(f"{proc.name} did not answer {proc.health_url} within "
                           f"{max(timeout, proc.start_timeout):.0f}s.\n"
                           f"{log_tail(children[proc.name])}")
        return not waiting

    while not all_ready():   # all_ready raises when one exits or is late
        time.sleep(0.1)


def log_tail(child: procs.Child) -> str:
    """The last lines a program printed, for an error message."""
    lines = child.tail()
    if not lines:
        return f"(no output in {child.log_path})"
    return f"Last lines of {child.log_path}:\n" + "\n".join("  " + line for line in lines)


def _instrument_command() -> str:
    """opentelemetry-instrument from the same environment as this Python."""
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    if beside.exists():
        return str(beside)
    found = shutil.which("opentelemetry-instrument")
    if not found:
        raise LabError("opentelemetry-instrument is not installed; run `make setup` first.")
    return found


def _jaeger_binary() -> Path:
    from .binaries import find_jaeger, jaeger_missing_reason

    path = find_jaeger()
    if path is None:
        raise LabError("this backend runs the real Jaeger binary, which is not built yet. "
                       + jaeger_missing_reason())
    return path


def _collector_binary() -> Path:
    from .binaries import collector_missing_reason, find_collector

    path = find_collector()
    if path is None:
        raise LabError("this backend runs the lab's own Collector, which is not built yet. "
                       + collector_missing_reason())
    return path


def _compose_file(*parts: str) -> Path:
    try:
        return compose_file(*parts)
    except RepoNotFound as exc:
        raise LabError(str(exc)) from None
