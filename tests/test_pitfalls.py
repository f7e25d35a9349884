"""Each pitfall, run for real: the broken program leaves the broken trace, the fix makes it whole.

Every run is a real program (real SDK, real exporter, real HTTP or gRPC) sending
to a fresh embedded backend on free ports; the traces are read back through the
query client, as a learner would read them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

from tracequest.host import procs
from tracequest.traces.client import QueryClient
from tracequest.pitfalls import scenarios
from tracequest.pitfalls.scenarios import Endpoints, read_all
from tracequest.pitfalls.watch import watch
from tracequest.host.ports import free_port

from test_doctor import mismatched_python  # noqa: F401  (a fixture: the throw-away venv)


def whole(outcome, service: str, spans: int) -> None:
    """One trace, one root, no orphans, every span under ``service``."""
    assert len(outcome.traces) == 1, outcome.describe()
    trace = outcome.traces[0]
    assert len(trace) == spans, outcome.describe()
    assert len(trace.roots) == 1 and not trace.orphans, outcome.describe()
    assert outcome.services == [service], outcome.describe()


def nothing(outcome) -> None:
    assert outcome.traces == [], outcome.describe()


def thread_pool(outcome) -> None:
    if outcome.fixed:
        whole(outcome, "basket", 4)
        assert [s.name for s in outcome.traces[0].root.children] == ["price item"] * 3
    else:
        assert len(outcome.traces) == 4, outcome.describe()
        assert sorted(t.root.name for t in outcome.traces) == ["price basket"] + ["price item"] * 3
        assert all(len(t) == 1 for t in outcome.traces), outcome.describe()


def asyncio_executor(outcome) -> None:
    if outcome.fixed:
        whole(outcome, "report", 5)
        fetches = outcome.traces[0].find("fetch")
        assert [c.name for f in fetches for c in f.children] == ["read file", "read file"]
    else:
        assert len(outcome.traces) == 3, outcome.describe()
        roots = sorted(t.root.name for t in outcome.traces)
        assert roots == ["build report", "read file", "read file"], outcome.describe()
        main = next(t for t in outcome.traces if t.root.name == "build report")
        assert all(not f.children for f in main.find("fetch")), "the fetch spans kept a child"


def short_lived(outcome) -> None:
    if outcome.fixed:
        whole(outcome, "importer", 3)
        assert [s.name for s in outcome.traces[0].root.children] == ["import file"] * 2
    else:
        # The workers' spans never left them: the parent's span is alone.
        assert [s.name for s in outcome.spans] == ["nightly import"], outcome.describe()


def unknown_service(outcome) -> None:
    whole(outcome, "job" if outcome.fixed else "unknown_service:python", 2)


def job_or_nothing(outcome) -> None:
    if outcome.fixed:
        whole(outcome, "job", 2)
        assert outcome.traces[0].root.name == "nightly job"
    else:
        nothing(outcome)


def uninstrumented_client(outcome) -> None:
    if outcome.fixed:
        whole(outcome, "checkout", 3)
        server = outcome.traces[0].find("GET /price", kind="SERVER")[0]
        assert server.parent.kind == "CLIENT" and server.parent.parent.name == "checkout"
    else:
        assert sorted(t.root.name for t in outcome.traces) == ["GET /price", "checkout"], outcome.describe()
        assert all(len(t) == 1 for t in outcome.traces), outcome.describe()


def log_lines(outcome) -> None:
    """Fixed, every log line names the trace the backend holds, and the span it was written in."""
    whole(outcome, "orders", 2)
    trace = outcome.traces[0]
    lines = [line for line in outcome.output if "order" in line or "card" in line]
    assert len(lines) == 3, outcome.output
    if outcome.fixed:
        assert all(f"trace_id={trace.trace_id}" in line for line in lines), (trace.trace_id, lines)
        charge = trace.find("charge card")[0]
        assert f"span_id={charge.span_id}" in lines[1] and "card declined" in lines[1], lines
        assert f"span_id={trace.root.span_id}" in lines[0], lines
    else:
        assert not any("trace_id" in line or trace.trace_id in line for line in lines), lines


def mismatched_versions(outcome) -> None:
    if outcome.fixed:
        whole(outcome, "prices", 2)
        server = outcome.traces[0].root
        assert (server.kind, server.name) == ("SERVER", "GET /price"), outcome.describe()
        assert [c.name for c in server.children] == ["look up price"]
    else:
        # The SDK and exporter work (the manual span arrived); Flask was never instrumented.
        whole(outcome, "prices", 1)
        assert outcome.traces[0].root.name == "look up price", outcome.describe()
        assert any("Importing of flask failed, skipping it" in line for line in outcome.output), outcome.output


SHAPES = {
    "thread-pool": thread_pool,
    "asyncio-executor": asyncio_executor,
    "short-lived": short_lived,
    "unknown-service": unknown_service,
    "http-to-grpc-port": job_or_nothing,
    "grpc-to-http-port": job_or_nothing,
    "traces-endpoint-path": job_or_nothing,
    "endpoint-with-path": job_or_nothing,
    "uninstrumented-client": uninstrumented_client,
    "log-lines": log_lines,
    "mismatched-versions": mismatched_versions,
}


def test_every_pitfall_has_a_shape_test():
    assert sorted(SHAPES) == sorted(p.id for p in scenarios.PITFALLS)


@pytest.mark.parametrize("fixed", [False, True], ids=["broken", "fixed"])
@pytest.mark.parametrize("pitfall", sorted(SHAPES))
def test_scenario_shape(pitfall, fixed, backend, tmp_path, request):
    if pitfall == "mismatched-versions" and not fixed:
        request.getfixturevalue("mismatched_python")  # built once from PyPI, or skipped
    outcome = scenarios.run(pitfall, Endpoints.of(backend), fixed, tmp_path)
    assert outcome.exit_code == 0, "\n".join(outcome.output)
    SHAPES[pitfall](outcome)


# --- two pitfalls that are gone with the pinned versions (README and chapter 10 say so) ---

DATA = Path(__file__).resolve().parent / "data" / "pitfalls"


def test_prefork_workers_keep_their_spans(backend, tmp_path):
    """gunicorn --preload with tracing set up in the master: each worker still exports, while it runs."""
    port = free_port()
    env = procs.environment({"OTEL_SERVICE_NAME": "prefork", "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_grpc_endpoint,
                             "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel,process"},
                            scrub=True)
    gunicorn = procs.start("gunicorn", [str(Path(sys.executable).with_name("gunicorn")), "--preload", "--workers", "2",
                                        "--no-control-socket", "--bind", f"127.0.0.1:{port}", "prefork_app:app"],
                           tmp_path / "gunicorn.log", env=env, cwd=DATA)
    try:
        assert gunicorn.wait_ready(lambda: procs.listens("127.0.0.1", port), 30), gunicorn.tail()
        for _ in range(6):
            requests.get(f"http://127.0.0.1:{port}/", timeout=10).raise_for_status()
        client = QueryClient(backend.query_url)
        served = procs.until(lambda: len([s for t in read_all(client) for s in t if s.kind == "SERVER"]) >= 6, 15)
        assert served, "the workers' SERVER spans did not arrive while gunicorn ran"
    finally:
        gunicorn.stop()
    spans = [s for t in read_all(client) for s in t]
    boot = [s for s in spans if s.name == "load catalogue"]
    workers = {s.resource.get("process.pid") for s in spans if s.kind == "SERVER"}
    assert len(boot) == 1 and boot[0].resource.get("process.pid") == gunicorn.pid
    assert workers and gunicorn.pid not in workers, "the SERVER spans should come from forked workers"


def test_flask_reloader_keeps_auto_instrumentation(backend):
    """`opentelemetry-instrument flask run --debug`: the reloader's child is instrumented too."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("opentelemetry-instrument")),
               str(Path(sys.executable).with_name("flask")), "--app", "plain_server", "run", "--debug",
               "--port", str(port)]
    env = procs.environment({"OTEL_SERVICE_NAME": "reloaded"}, scrub=True)
    findings = watch(command, [f"http://127.0.0.1:{port}/"], {**env, "PYTHONPATH": str(DATA.parent / "doctor")})
    assert [f.code for f in findings] == ["ok"], [f.line() for f in findings]
