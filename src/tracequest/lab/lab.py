"""Starting and stopping the lab: a trace backend and the demo services.

The lab runs as background processes so `make up` returns to the prompt. What
was started is written to ``<home>/lab.json``; `down` and `status` read it, so
they work from any later shell.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

from services.common.knobs import knob
from tracequest.errors import LabError
from tracequest.host import procs
from tracequest.host.paths import compose_file
from tracequest.host.ports import HOST, Ports, check_free
from tracequest.host.procs import Process, wait_until_healthy
from tracequest.lab.home import STATE_FILE, find_home, read_state, write_state
from tracequest.lab.settings import (COLLECTOR_BACKENDS, COLLECTOR_CONFIGS, METRICS_CONFIGS, SERVICES,
                                     UNTRACED, LabSettings)
from tracequest.lab.topology import GATEWAYS, CollectorPorts, collector_programs
from tracequest.programs import collector, jaeger, prometheus, zipkin
from tracequest.programs.cache import Program
from tracequest.programs.collector import collector_env, collector_process
from tracequest.programs.jaeger import jaeger_process
from tracequest.programs.prometheus import prometheus_program
from tracequest.programs.zipkin import zipkin_program
from tracequest.traces.timefmt import format_go_duration


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
        state = read_state(home)
        if not state:
            return None
        try:
            return cls(LabSettings.from_state(state.get("settings") or {}), home)
        except (ValueError, TypeError, AttributeError, LabError):
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
        badger = self.home / "badger" if self.settings.storage == "badger" else None   # outlives `down`
        return jaeger_process(_needed(jaeger.PROGRAM, "this backend runs the real Jaeger binary"),
                              self.ports, behind_collector=self.backend in COLLECTOR_BACKENDS,
                              badger_dir=badger)

    def _collector_process(self) -> Process:
        """The lab's own Collector running a pipeline from compose/collector/ (or a learner's file)."""
        binary = _needed(collector.PROGRAM, "this backend runs the lab's own Collector")
        name = self._pipeline()
        if name in COLLECTOR_CONFIGS:   # ours carry the health_check extension
            return collector_process(binary, compose_file("collector", f"{name}.yaml"),
                                     collector_env(self.ports), f"{self.url('collector_health')}/")
        # A learner's own file, e.g. a quest's collector.yaml: ready once OTLP/HTTP answers.
        return collector_process(binary, Path(name).resolve(), collector_env(self.ports),
                                 otlp_http_url=f"{self.url('otlp_http')}/v1/traces")

    def _scale_out_processes(self) -> list[Process]:
        """Two tail-sampling gateways, then the agent on the lab's OTLP ports routing to them by trace id."""
        return collector_programs(_needed(collector.PROGRAM, "this backend runs the lab's own Collector"),
                                  "trace-id", CollectorPorts.of_lab(self.ports),
                                  self._gateway_ports(), f"{HOST}:{self.ports.jaeger_otlp_grpc}")

    def _gateway_ports(self) -> dict[str, CollectorPorts]:
        """Each gateway's ports, as recorded in the settings (``choose_gateway_ports`` fills them)."""
        return {name: CollectorPorts(*ports) for name, ports in self.settings.gateway_ports.items()}

    def choose_gateway_ports(self) -> None:
        """Give a scale-out lab's gateways free ports, once; other labs have no gateways."""
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
        _needed(zipkin.PROGRAM, "the fan-out backend runs the real Zipkin server")
        return zipkin_program(self.ports)   # a ZipkinError when no Java can run it

    def has_prometheus(self) -> bool:
        return prometheus.PROGRAM.find() is not None

    def _prometheus_process(self) -> Process:
        """Prometheus scraping the span metrics (only when it is installed)."""
        return prometheus_program(self.ports, self.home)

    def _service_process(self, name: str) -> Process:
        argv = [sys.executable, "-m", f"services.{name}"]
        if name not in UNTRACED:
            argv.insert(0, _instrument_command())
        return Process(name, argv, f"{self.url(name)}/health", self._service_env(name))

    def _service_env(self, name: str) -> dict:
        """A service's environment: where to export, and its knobs by their environment twins."""
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
        if proc.name in SERVICES:
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
        if proc.name in SERVICES:
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
        write_state(self.home, self.settings.as_state(),
                    {name: c.ident.as_state() for name, c in children.items()})

    def _recorded_children(self, log=lambda *_: None) -> dict[str, procs.Child]:
        """The programs lab.json names that are still the very processes the lab started.

        A pid whose process has another start time was reused by the system for
        another program (after a reboot, say): it is left alone, and said so.
        """
        recorded = read_state(self.home).get("processes")
        if not isinstance(recorded, dict):
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


def _instrument_command() -> str:
    """opentelemetry-instrument from the same environment as this Python."""
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    if beside.exists():
        return str(beside)
    found = shutil.which("opentelemetry-instrument")
    if not found:
        raise LabError("opentelemetry-instrument is not installed; run `make setup` first.")
    return found


def _needed(program: Program, runs: str) -> Path:
    """The program a lab is about to run, or a LabError that says what runs it and how to get it."""
    path = program.find()
    if path is None:
        made = "fetched" if program.artifact == "jar" else "built"
        raise LabError(f"{runs}, which is not {made} yet. {program.missing_reason()}")
    return path
