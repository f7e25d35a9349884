"""Each pitfall as a real program run twice against a backend: broken, then fixed.

A scenario starts its program (under ``opentelemetry-instrument`` when the
mistake lives in the environment), waits for it to finish, then reads every
trace it left through the query client. Tests and chapter 10 compare the two shapes.
"""

from __future__ import annotations

import html
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracequest.backend.server import start_backend
from tracequest.host import procs
from tracequest.host.ports import HOST
from tracequest.pitfalls.venvs import throwaway_venv
from tracequest.traces.client import QueryClient
from tracequest.traces.model import Trace

APPS = Path(__file__).with_name("apps")
RUN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoints:
    """Where a backend takes spans in, and where it is read from."""

    grpc: str   # http://127.0.0.1:PORT of OTLP/gRPC
    http: str   # http://127.0.0.1:PORT of OTLP/HTTP (no path)
    query: str  # the query API

    @classmethod
    def of(cls, backend) -> Endpoints:
        """From a running embedded backend (tracequest.backend.Backend) or a Lab."""
        if hasattr(backend, "otlp_grpc_endpoint"):
            return cls(backend.otlp_grpc_endpoint, backend.otlp_http_endpoint, backend.query_url)
        ports = backend.settings.ports
        return cls(f"http://{HOST}:{ports.otlp_grpc}", f"http://{HOST}:{ports.otlp_http}", backend.query_url)


@dataclass(frozen=True)
class Pitfall:
    """One mistake: how to run it, what it looks like, and its one-line fix."""

    id: str
    title: str
    symptom: str                              # what the learner sees in the traces
    fix: str                                  # the one-line fix
    program: str                              # file in programs/
    env: Callable[[Endpoints, bool], dict]    # (endpoints, fixed) -> the program's OTEL_* and more
    instrument: bool = False                  # run under opentelemetry-instrument
    python: Callable[[bool], str] | None = None  # (fixed) -> the interpreter; default: the lab's


def _sdk_env(service: str) -> Callable[[Endpoints, bool], dict]:
    """The right environment: gRPC to the gRPC port, a service name."""
    return lambda ep, fixed: {"OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_ENDPOINT": ep.grpc,
                              "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}


def _unknown_service(ep: Endpoints, fixed: bool) -> dict:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": ep.grpc}
    return {**env, "OTEL_SERVICE_NAME": "job"} if fixed else env


def _http_to_grpc_port(ep: Endpoints, fixed: bool) -> dict:
    return {"OTEL_SERVICE_NAME": "job", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": ep.http if fixed else ep.grpc}


def _grpc_to_http_port(ep: Endpoints, fixed: bool) -> dict:
    return {"OTEL_SERVICE_NAME": "job", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": ep.grpc if fixed else ep.http}


def _traces_endpoint_path(ep: Endpoints, fixed: bool) -> dict:
    return {"OTEL_SERVICE_NAME": "job", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ep.http + ("/v1/traces" if fixed else "")}


def _endpoint_with_path(ep: Endpoints, fixed: bool) -> dict:
    return {"OTEL_SERVICE_NAME": "job", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": ep.http + ("" if fixed else "/v1/traces")}


def _mismatched_python(fixed: bool) -> str:
    """Broken: a throw-away venv whose Flask instrumentation is from another release
    than its opentelemetry-instrumentation (built once, ~1 min, from PyPI). Fixed: the
    lab's own interpreter, whose packages come from one release."""
    if fixed:
        return sys.executable

    return str(throwaway_venv())


PITFALLS: tuple[Pitfall, ...] = (
    Pitfall("thread-pool", "A thread pool loses the context",
            "each task's span is the root of a trace of its own; the parent span has no children",
            "submit contextvars.copy_context().run(fn, ...) instead of fn",
            "thread_pool.py", _sdk_env("basket")),
    Pitfall("asyncio-executor", "run_in_executor loses the context",
            "the spans made in the executor thread are roots of traces of their own",
            "use asyncio.to_thread(fn, ...), which copies the context, instead of loop.run_in_executor",
            "asyncio_executor.py", _sdk_env("report")),
    Pitfall("short-lived", "A worker process exits before its batch is sent",
            "the trace has the parent's span but none of the worker processes' spans",
            "call provider.force_flush() (or shutdown()) before a worker process ends",
            "short_lived.py", _sdk_env("importer")),
    Pitfall("unknown-service", "No service name",
            "the spans arrive under unknown_service:python",
            "set OTEL_SERVICE_NAME (or service.name in the Resource)",
            "job.py", _unknown_service, instrument=True),
    Pitfall("http-to-grpc-port", "OTLP/HTTP sent to the gRPC port",
            "no trace at all; the exporter fails in a background thread",
            "with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, point the endpoint at 4318, not 4317",
            "job.py", _http_to_grpc_port, instrument=True),
    Pitfall("grpc-to-http-port", "OTLP/gRPC sent to the HTTP port",
            "no trace at all; the exporter retries, then gives up",
            "gRPC (Python's default protocol) goes to 4317, not 4318",
            "job.py", _grpc_to_http_port, instrument=True),
    Pitfall("traces-endpoint-path", "A traces endpoint without /v1/traces",
            "no trace at all: the spans were posted to / and refused with 404",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as written: end it with /v1/traces",
            "job.py", _traces_endpoint_path, instrument=True),
    Pitfall("endpoint-with-path", "/v1/traces written into the base endpoint",
            "no trace at all: the SDK appended /v1/traces again and was refused with 404",
            "OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: write it without /v1/traces",
            "job.py", _endpoint_with_path, instrument=True),
    Pitfall("uninstrumented-client", "An HTTP client nobody instrumented",
            "two traces per request: the called service starts a new trace",
            "call through an instrumented client (requests + RequestsInstrumentor) or inject() the headers",
            "uninstrumented_client.py", _sdk_env("checkout")),
    Pitfall("log-lines", "Log lines without trace ids",
            "the trace is whole, but no log line names it: nothing leads from a log line to its trace",
            "LoggingInstrumentor().instrument(set_logging_format=True), or OTEL_PYTHON_LOG_CORRELATION=true "
            "under opentelemetry-instrument",
            "log_lines.py", _sdk_env("orders")),
    Pitfall("mismatched-versions", "An instrumentation from another release than its base",
            "the handler's own span arrives without a SERVER span above it: Flask was never instrumented "
            "(the output says 'Importing of flask failed, skipping it')",
            "install the instrumentations from the release of opentelemetry-instrumentation (0.66b1 "
            "here), or let opentelemetry-bootstrap -a install pick them",
            "mismatched_versions.py", _sdk_env("prices"), instrument=True, python=_mismatched_python),
)


def get(pitfall_id: str) -> Pitfall:
    for pitfall in PITFALLS:
        if pitfall.id == pitfall_id:
            return pitfall
    raise KeyError(f"no pitfall {pitfall_id!r}; the pitfalls are {', '.join(p.id for p in PITFALLS)}")


@dataclass
class Outcome:
    """What one run of a scenario left in the backend."""

    pitfall: Pitfall
    fixed: bool
    traces: list[Trace]
    exit_code: int | None
    output: list[str] = field(default_factory=list)

    @property
    def spans(self) -> list:
        return [span for trace in self.traces for span in trace]

    @property
    def services(self) -> list[str]:
        return sorted({span.service for span in self.spans})

    def names(self) -> list[str]:
        return sorted(span.name for span in self.spans)

    def describe(self) -> str:
        shape = "fixed" if self.fixed else "broken"
        return (f"{self.pitfall.id} ({shape}): {len(self.traces)} trace(s), {len(self.spans)} span(s), "
                f"services {self.services or 'none'}")

    def __str__(self) -> str:
        shown = [trace.waterfall(width=80) for trace in self.traces] or ["(no trace arrived)"]
        return "\n".join([self.describe(), *shown])

    def _repr_html_(self) -> str:
        shown = "".join(trace._repr_html_() for trace in self.traces) or "<p><em>no trace arrived</em></p>"
        return f"<p>{html.escape(self.describe())}</p>{shown}"


def read_all(client: QueryClient, lookback_s: float = 600) -> list[Trace]:
    """Every trace the backend holds (for each service it knows), newest first."""
    seen: dict[str, Trace] = {}
    for service in client.services():
        for trace in client.find_traces(service, lookback_s=lookback_s, limit=1000):
            seen.setdefault(trace.trace_id, trace)
    return sorted(seen.values(), key=lambda t: t.start_ns, reverse=True)


def run(pitfall: Pitfall | str, endpoints: Endpoints, fixed: bool, workdir: Path) -> Outcome:
    """Run the scenario once against a backend that holds nothing else, and read what it left."""
    pitfall = get(pitfall) if isinstance(pitfall, str) else pitfall
    script = APPS / pitfall.program
    env = procs.environment({"PITFALL_FIXED": "1" if fixed else "0", "PYTHONUNBUFFERED": "1",
                             "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                             # A refused export gives up after 2 s instead of 10.
                             "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
                             **pitfall.env(endpoints, fixed)}, scrub=True)
    log = Path(workdir) / f"{pitfall.id}-{'fixed' if fixed else 'broken'}.log"
    python = pitfall.python(fixed) if pitfall.python else sys.executable
    argv = [python, str(script)]
    if pitfall.instrument:
        argv = [str(Path(python).with_name("opentelemetry-instrument")), *argv]
    child = procs.start(pitfall.id, argv, log, env=env, cwd=APPS)
    if not procs.until(lambda: not child.is_running(), RUN_TIMEOUT):
        child.stop()
    client = QueryClient(endpoints.query)
    # The program has ended, so whatever it sent has arrived: read until the count holds.
    procs.settled(lambda: _shape(client), settle=0.3, patience=0.3, timeout=10)
    return Outcome(pitfall, fixed, read_all(client), child.exit_code(), child.tail(60))


def compare(pitfall: Pitfall | str, workdir: Path | None = None) -> tuple[Outcome, Outcome]:
    """Run a pitfall broken, then fixed, each against a fresh private backend on free ports."""
    with tempfile.TemporaryDirectory(prefix="tracequest-pitfall-") as tmp:
        outcomes = []
        for fixed in (False, True):
            with start_backend(":memory:", grpc_port=0, http_port=0, query_port=0) as backend:
                outcomes.append(run(pitfall, Endpoints.of(backend), fixed, Path(workdir or tmp)))
    return outcomes[0], outcomes[1]


def _shape(client: QueryClient) -> tuple:
    """A comparable reading of the backend: each trace's id and span count."""
    return tuple((trace.trace_id, len(trace)) for trace in read_all(client))
