"""Starting and stopping the lab: a trace backend and the four demo services.

The lab runs as background processes so `make up` returns to the prompt. What
was started is written to ``<home>/lab.json``; `down` and `status` read it, so
they work from any later shell.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .ports import HOST, Ports, check_free

SERVICES = ("customer", "driver", "route", "frontend")  # downstream first
BACKENDS = ("embedded", "jaeger", "collector")
COLLECTOR_CONFIGS = ("collector", "tail-sampling", "pii")
COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
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
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "services").is_dir():
            return folder / HOME_DIR
    return here / HOME_DIR


class Lab:
    """The lab in one folder: its processes, ports, logs and spans."""

    def __init__(self, home: Path | str | None = None, ports: Ports | None = None,
                 backend: str = "embedded", service_env: dict | None = None,
                 services: tuple[str, ...] = SERVICES, collector_config: str = "collector",
                 backend_env: dict | None = None):
        if backend not in BACKENDS:
            raise LabError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        if collector_config not in COLLECTOR_CONFIGS and not Path(collector_config).is_file():
            raise LabError(f"unknown collector config {collector_config!r}; choose one of: "
                           f"{', '.join(COLLECTOR_CONFIGS)}, or give the path of a YAML file")
        self.collector_config = str(collector_config)
        # Settings for the backend programs, e.g. TQ_TAIL_DECISION_WAIT for a collector.
        self.backend_env = dict(backend_env or {})
        self.home = Path(home) if home else find_home()
        self.ports = ports or Ports()
        self.backend = backend
        self.service_env = dict(service_env or {})
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise LabError(f"unknown service(s) {sorted(unknown)}; the demo has {', '.join(SERVICES)}")
        self.services = tuple(s for s in SERVICES if s in services)

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

    @classmethod
    def from_state(cls, home: Path | str | None = None) -> Lab | None:
        """The lab recorded in a home folder, or None if none was started there."""
        home = Path(home) if home else find_home()
        try:
            state = json.loads((home / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(home, Ports(**state["ports"]), state.get("backend", "embedded"),
                   state.get("service_env", {}), tuple(state.get("services", SERVICES)),
                   state.get("collector_config", "collector"), state.get("backend_env", {}))

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
        if self.backend == "collector":
            used.update({"Jaeger OTLP gRPC": p.jaeger_otlp_grpc, "Jaeger OTLP HTTP": p.jaeger_otlp_http,
                         "collector metrics": p.collector_metrics})
        return used

    def _backend_processes(self) -> list[Process]:
        if self.backend == "embedded":
            return [self._embedded_process()]
        if self.backend == "jaeger":
            return [self._jaeger_process(self.ports.otlp_grpc, self.ports.otlp_http)]
        return [self._jaeger_process(self.ports.jaeger_otlp_grpc, self.ports.jaeger_otlp_http),
                self._collector_process()]

    def _embedded_process(self) -> Process:
        p = self.ports
        argv = [sys.executable, "-m", "tracequest.backend", "--db", str(self.home / "spans.db"),
                "--grpc-port", str(p.otlp_grpc), "--http-port", str(p.otlp_http),
                "--query-port", str(p.query)]
        return Process("backend", argv, f"{self.query_url}/api/v3/services")

    def _jaeger_process(self, otlp_grpc: int, otlp_http: int) -> Process:
        """Real Jaeger with the config compose/ mounts, its listeners moved to our ports."""
        p = self.ports
        env = {"TQ_JAEGER_HOST": HOST, "TQ_JAEGER_OTLP_GRPC_PORT": str(otlp_grpc),
               "TQ_JAEGER_OTLP_HTTP_PORT": str(otlp_http), "TQ_JAEGER_QUERY_HTTP_PORT": str(p.query),
               "TQ_JAEGER_QUERY_GRPC_PORT": str(p.jaeger_query_grpc),
               "TQ_JAEGER_METRICS_PORT": str(p.jaeger_metrics)}
        argv = [str(_jaeger_binary()), "--config", str(_compose_file("jaeger", "config.yaml"))]
        return Process("jaeger", argv, f"{self.query_url}/api/v3/services", env)

    def _collector_process(self) -> Process:
        """The collector pipeline from compose/collector/, run by the same binary."""
        p = self.ports
        env = {"TQ_COLLECTOR_HOST": HOST, "TQ_COLLECTOR_OTLP_GRPC_PORT": str(p.otlp_grpc),
               "TQ_COLLECTOR_OTLP_HTTP_PORT": str(p.otlp_http),
               "TQ_COLLECTOR_METRICS_PORT": str(p.collector_metrics),
               "TQ_JAEGER_OTLP_ENDPOINT": f"{HOST}:{p.jaeger_otlp_grpc}"}
        if self.collector_config in COLLECTOR_CONFIGS:
            config = _compose_file("collector", f"{self.collector_config}.yaml")
        else:  # a learner's own file, e.g. a quest's collector.yaml
            config = Path(self.collector_config).resolve()
        argv = [str(_jaeger_binary()), "--config", str(config)]
        return Process("collector", argv, f"{self.url('otlp_http')}/v1/traces", env,
                       any_answer_is_healthy=True)

    def _service_process(self, name: str) -> Process:
        argv = [_instrument_command(), sys.executable, "-m", f"services.{name}"]
        return Process(name, argv, f"{self.url(name)}/health", self._service_env(name))

    def _service_env(self, name: str) -> dict:
        p = self.ports
        env = {
            "OTEL_SERVICE_NAME": name,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{p.otlp_grpc}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "health",
            # Export every 200 ms so a learner's trace is queryable almost at once.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PYTHONUNBUFFERED": "1",
            "TQ_CUSTOMER_URL": self.url("customer"),
            "TQ_DRIVER_URL": self.url("driver"),
            "TQ_ROUTE_URL": self.url("route"),
        }
        for service in SERVICES:
            env[f"TQ_{service.upper()}_PORT"] = str(getattr(p, service))
        env.update(self.service_env)
        return env

    # --- up, down, status ---------------------------------------------------

    def status(self) -> dict[str, dict]:
        """Per process: pid, whether it runs, whether it answers its health check."""
        pids = self._recorded_pids()
        report = {}
        for proc in self.processes():
            pid = pids.get(proc.name)
            alive = pid is not None and _alive(pid)
            report[proc.name] = {"pid": pid, "running": alive,
                                 "healthy": alive and _healthy(proc),
                                 "url": self._display_url(proc)}
        return report

    def _display_url(self, proc: Process) -> str:
        if proc.name in SERVICES:
            return self.url(proc.name)
        if proc.name == "collector":
            return f"OTLP 127.0.0.1:{self.ports.otlp_grpc} (gRPC), 127.0.0.1:{self.ports.otlp_http} (HTTP)"
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
        check_free(self.used_ports())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        pids: dict[str, int] = {}
        try:
            for proc in self.processes():
                pids[proc.name] = self._spawn(proc)
                self._write_state(pids)
                self._wait_healthy(proc, pids[proc.name], timeout)
        except BaseException:
            self.down(log=lambda *_: None)
            raise
        return True

    def down(self, timeout: float = 10.0, log=print) -> list[str]:
        """Stop services first (they flush spans to the backend), then the backend."""
        pids = self._recorded_pids()
        stopped = []
        services = [n for n in reversed(SERVICES) if n in pids]
        backends = [n for n in reversed(list(pids)) if n not in SERVICES]  # collector before Jaeger
        for group in (services, *([n] for n in backends)):
            for name in group:
                _signal(pids[name], signal.SIGTERM)
            for name in group:
                if _wait_exit(pids[name], timeout):
                    stopped.append(name)
                else:
                    _signal(pids[name], signal.SIGKILL)
                    _wait_exit(pids[name], 2)
                    log(f"{name} did not stop within {timeout:.0f}s; killed it.")
                    stopped.append(name)
        self.state_path.unlink(missing_ok=True)
        return stopped

    # --- helpers ------------------------------------------------------------

    def _spawn(self, proc: Process) -> int:
        log_file = open(self.log_dir / f"{proc.name}.log", "w")
        env = {**os.environ, **proc.env}
        # Backends must not inherit a learner's OTEL_* settings meant for services.
        if proc.name not in SERVICES:
            env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
            env.update(self.backend_env)
        child = _popen(proc.argv, env, log_file)
        log_file.close()
        return child.pid

    def _wait_healthy(self, proc: Process, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                raise LabError(f"{proc.name} exited during start-up.\n{self._log_tail(proc.name)}")
            if _healthy(proc):
                return
            time.sleep(0.1)
        raise LabError(f"{proc.name} did not answer {proc.health_url} within {timeout:.0f}s.\n"
                       f"{self._log_tail(proc.name)}")

    def _log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {path})"
        return f"Last lines of {path}:\n" + "\n".join("  " + line for line in tail)

    def _write_state(self, pids: dict[str, int]) -> None:
        state = {"backend": self.backend, "collector_config": self.collector_config,
                 "backend_env": self.backend_env,
                 "ports": self.ports.as_dict(), "processes": pids,
                 "service_env": self.service_env, "services": list(self.services),
                 "started_at": time.time()}
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def _recorded_pids(self) -> dict[str, int]:
        try:
            return json.loads(self.state_path.read_text()).get("processes", {})
        except (OSError, ValueError):
            return {}


def _instrument_command() -> str:
    """opentelemetry-instrument from the same environment as this Python."""
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    if beside.exists():
        return str(beside)
    found = shutil.which("opentelemetry-instrument")
    if not found:
        raise LabError("opentelemetry-instrument is not installed; run `make setup` first.")
    return found


def _popen(argv: list[str], env: dict, log_file):
    import subprocess

    # A new session: the lab outlives the shell command that started it.
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # Our own children linger as zombies until reaped; they are not alive.
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _healthy(proc: Process) -> bool:
    try:
        status = requests.get(proc.health_url, timeout=1).status_code
    except requests.RequestException:
        return False
    return status == 200 or (proc.any_answer_is_healthy and status < 500)


def _jaeger_binary() -> Path:
    from .binaries import find_jaeger, jaeger_missing_reason

    path = find_jaeger()
    if path is None:
        raise LabError("this backend runs the real Jaeger binary, which is not built yet. "
                       + jaeger_missing_reason())
    return path


def _compose_file(*parts: str) -> Path:
    path = COMPOSE_DIR.joinpath(*parts)
    if not path.exists():
        raise LabError(f"{path} is missing: the real backends read their configs from the "
                       "repository's compose/ folder; run the lab from a clone of the repository.")
    return path
