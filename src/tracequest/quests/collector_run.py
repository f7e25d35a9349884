"""Running a learner's collector.yaml for real, between OTLP senders and Jaeger.

The checks of quests 06b and 07 validate the file with the lab's own
Collector build (``otelcol-tracequest validate``), so a learner sees the
collector's own words for what it cannot load, then run it in front of the
real Jaeger on free ports (a :class:`~tracequest.lab.Lab` with no demo
services) and read back from Jaeger what survived. Quest 09 runs it in the
fan-out lab instead (``backend="fan-out"``): Jaeger, Zipkin and Prometheus
behind the collector, each read back through its own API.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tracequest.errors import LabError
from tracequest.expect.failure import QuestFailure
from tracequest.host import procs
from tracequest.host.ports import HOST, Ports
from tracequest.lab.lab import Lab
from tracequest.lab.settings import LabSettings
from tracequest.programs.collector import collector_missing_reason, find_collector
from tracequest.programs.jaeger import find_jaeger, jaeger_missing_reason
from tracequest.programs.prometheus import (INSTALL_COMMAND, PrometheusError, find_prometheus,
                                            prometheus_missing_reason, query)
from tracequest.programs.zipkin import find_zipkin, java_command, zipkin_missing_reason, zipkin_trace, ZipkinError
from tracequest.quests.collector_config import (GO_LOG_STAMP, CollectorConfig, compact_log_line,
                                                validation_error)
from tracequest.traces.client import QueryClient

START_TIMEOUT = 20.0
# Zipkin is a JVM: on a busy machine it needs longer than the others to answer.
FAN_OUT_START_TIMEOUT = 90.0
VALIDATE_TIMEOUT = 30.0
LOG_LINES = 12


def require_programs(backend: str = "collector") -> Path:
    """The lab's Collector and the backends behind it, or a failure saying how to get them."""
    for find, what, missing in (
            (find_collector, "the lab's Collector: this check runs your collector.yaml in it",
             collector_missing_reason),
            (find_jaeger, "the real Jaeger binary: your collector exports to it", jaeger_missing_reason)):
        if find() is None:
            raise QuestFailure(
                what, missing(),
                "build both once with `make backends` (it needs Go, and takes a few minutes the "
                "first time); the check finds them by itself afterwards.")
    if backend == "fan-out":
        _require_zipkin_and_prometheus()
    return find_collector()


def _require_zipkin_and_prometheus() -> None:
    """The fan-out lab's other two programs: Zipkin (a jar, and Java) and Prometheus."""

    if find_zipkin() is None:
        raise QuestFailure("the Zipkin server: your collector exports to it", zipkin_missing_reason(),
                           "fetch it once with `make backends`; the check finds it by itself "
                           "afterwards.")
    try:
        java_command()
    except ZipkinError as exc:
        raise QuestFailure("a Java to run the Zipkin server with", str(exc),
                           "install one, then run the check again.") from None
    if find_prometheus() is None:
        raise QuestFailure("Prometheus: it scrapes the metrics your collector makes",
                           prometheus_missing_reason(),
                           f"install it once with `{INSTALL_COMMAND}`; the check starts its own "
                           "Prometheus on a free port and never touches a system one.")


class CollectorRun:
    """A learner's collector.yaml between OTLP senders and the real Jaeger, on free ports.

    Use it as a context manager: inside, :meth:`validate` the file, judge its
    shape, then :meth:`start` Jaeger and the collector; leaving stops both and
    removes their logs. The collector reads the same ``TQ_*`` variables as the
    configs in ``compose/collector/``; ``env`` adds or overrides some (a check
    sets ``TQ_TAIL_DECISION_WAIT=1s``).
    """

    def __init__(self, config: Path, env: Mapping[str, str] | None = None, backend: str = "collector"):
        self.config = Path(config)
        self.extra_env = dict(env or {})
        self.backend = backend
        if not self.config.is_file():
            raise QuestFailure(f"your collector config at {self.config}", "there is no such file.",
                               f"the check reads {self.config}; if you moved or renamed it, put it back.")
        self._home = tempfile.TemporaryDirectory(prefix="tracequest-collector-")
        self.lab = Lab(LabSettings(backend=backend, collector_config=str(self.config),
                                   ports=Ports.free(), services=(), backend_env=self.extra_env),
                       home=self._home.name)
        self._started = False
        self._environment: dict[str, str] | None = None

    @property
    def shown_path(self) -> str:
        """The file as the learner knows it: labs/07-collector/collector.yaml."""
        return f"{self.config.parent.parent.name}/{self.config.parent.name}/{self.config.name}"

    @property
    def otlp_endpoint(self) -> str:
        """Where senders reach the collector: its OTLP/gRPC port."""
        return f"http://{HOST}:{self.lab.ports.otlp_grpc}"

    @property
    def client(self) -> QueryClient:
        """Jaeger's query API, where what the collector exported ends up."""
        return QueryClient(self.lab.query_url)

    @property
    def zipkin_url(self) -> str:
        """Zipkin's API v2 and UI (fan-out only)."""
        return self.lab.url("zipkin")

    @property
    def prometheus_url(self) -> str:
        """Prometheus' HTTP API, scraping the collector's span metrics (fan-out only)."""
        return self.lab.url("prometheus")

    def zipkin_trace(self, trace_id: str) -> list[dict]:
        """The spans Zipkin holds for a trace, in its own JSON (API v2); [] while it has none."""

        return zipkin_trace(self.zipkin_url, trace_id)

    def metric(self, promql: str) -> list:
        """Prometheus' answer to ``promql`` now, one Sample per series; [] if it has none yet."""

        try:
            return query(self.prometheus_url, promql)
        except PrometheusError:
            return []

    def environment(self) -> dict[str, str]:
        """The variables the collector runs with: the lab's ``TQ_*`` ports plus ``env``."""
        if self._environment is None:   # worked out once: the ports stay for the whole run
            require_programs(self.backend)  # the lab names the programs in its command lines
            collector = next(p for p in self.lab.processes() if p.name == "collector")
            self._environment = {**collector.env, **self.extra_env}
        return dict(self._environment)

    def validate(self) -> None:
        """Load the file in the real binary without running it; its error becomes the failure."""
        binary = require_programs(self.backend)
        env = procs.environment(self.environment(), scrub=True)
        try:
            done = subprocess.run([str(binary), "validate", "--config", str(self.config)], env=env,
                                  capture_output=True, text=True, timeout=VALIDATE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise QuestFailure(f"{self.shown_path} to load in the collector",
                               f"`validate` did not finish within {VALIDATE_TIMEOUT:.0f} s.",
                               "this looks like a problem with the machine, not your file; "
                               "tell your instructor.") from None
        if done.returncode != 0:
            raise QuestFailure(
                f"{self.shown_path} to load in the collector",
                f"the collector refused it: {validation_error(done.stdout + done.stderr)}",
                "fix what that message names; the starter file shows the shapes that load. To "
                "see the message yourself: $(python -m tracequest.programs path collector) validate "
                f"--config {self.shown_path}")

    def __enter__(self) -> CollectorRun:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._home.cleanup()

    def start(self) -> None:
        """Start the backends, then the collector with the learner's file; a failure explains itself."""
        require_programs(self.backend)
        self._check_receiver_addresses()
        self._started = True
        timeout = FAN_OUT_START_TIMEOUT if self.backend == "fan-out" else START_TIMEOUT
        try:
            self.lab.up(timeout=timeout, log=lambda *_: None)
        except LabError as exc:
            self.stop()
            first, _, rest = str(exc).partition("\n")
            if not first.startswith("collector"):
                backend = {"zipkin": "Zipkin", "prometheus": "Prometheus"}.get(first.partition(" ")[0], "Jaeger")
                raise QuestFailure(f"{backend} to start, to receive what your collector exports",
                                   first, "this is not about your file; tell your instructor.",
                                   details=rest) from None
            expected = f"the collector to start with {self.shown_path} and listen on its OTLP ports"
            if "exited" in first:
                raise QuestFailure(
                    expected, f"it loaded the file, then stopped: {validation_error(rest)}",
                    "the message names the component and the setting it could not use; "
                    "compare them with the collector's documentation for that component.",
                    details=self.log_tail()) from None
            raise QuestFailure(
                expected, f"it was still not answering on port {self.lab.ports.otlp_http} "
                f"after {timeout:.0f} s.",
                "keep the receivers' endpoints as the starter has them "
                "(${env:TQ_COLLECTOR_HOST...}): the check places the collector on free ports "
                "through those variables.", details=self.log_tail()) from None

    def _check_receiver_addresses(self) -> None:
        """The OTLP receiver must listen where the check sends: on the ports it chose."""
        config, env = CollectorConfig.read(self.config), self.environment()
        for protocol, port in (("grpc", self.lab.ports.otlp_grpc), ("http", self.lab.ports.otlp_http)):
            wanted = f"{HOST}:{port}"
            found = []
            for name, receiver in config.defined("receivers", "otlp").items():
                settings = (receiver.get("protocols") or {}).get(protocol) or {}
                endpoint = settings.get("endpoint")
                found.append(f"{name} {protocol} endpoint {endpoint!r}" if endpoint else
                             f"{name} has no {protocol} endpoint")
                if endpoint and config.resolve(endpoint, env) == wanted:
                    break
            else:
                raise QuestFailure(
                    f"an otlp receiver listening for OTLP/{protocol} where the check sends, "
                    f"at {wanted}",
                    ("; ".join(found) or "there is no otlp receiver") + ".",
                    "keep the receivers as the starter has them: endpoint: "
                    "${env:TQ_COLLECTOR_HOST:-127.0.0.1}:${env:TQ_COLLECTOR_OTLP_"
                    f"{protocol.upper()}_PORT:-{4317 if protocol == 'grpc' else 4318}}}. "
                    "The check chooses free ports and passes them in those variables.")

    def stop(self) -> None:
        """Stop the collector, then the backends (the lab stops them in that order)."""
        if self._started:
            self._started = False
            self.lab.down(log=lambda *_: None)

    def log_tail(self, lines: int = LOG_LINES) -> str:
        """The collector's last lines of output, shortened, for a failure's details."""
        path = self.lab.log_dir / "collector.log"
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            text = []
        shown: list[str] = []
        for line in text:
            if line.startswith("\t") or " " not in line.strip():
                continue  # a Go stack trace: frames and file positions
            short = compact_log_line(GO_LOG_STAMP.sub("Error: ", line))
            if short and short not in shown[-2:]:
                shown.append(short)
        shown = shown[-lines:] or ["(no output)"]
        return "last lines of the collector's output:\n" + "\n".join("  " + line for line in shown)


