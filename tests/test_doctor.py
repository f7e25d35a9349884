"""`tracequest doctor`, one real broken set-up per finding, and clean set-ups with no false alarm.

Every case runs the real command in a subprocess with a real environment, against a
real backend on free ports: exporters really send (or fail to), ports really answer,
programs really run. Only the collector configs are files and nothing more, as the
finding is about the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tracequest import procs
from tracequest.backend import start_backend
from tracequest.pitfalls.scenarios import PROGRAMS
from tracequest.pitfalls.venvs import throwaway_venv
from tracequest.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
TRACEQUEST = Path(sys.executable).with_name("tracequest")
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
COLLECTOR_YAML = ROOT / "compose" / "collector" / "collector.yaml"
LATE_SERVER = Path(__file__).resolve().parent / "data" / "doctor" / "late_server.py"


def doctor(*args: str, env: dict | None = None) -> tuple[int, dict]:
    """Run `tracequest doctor --json ARGS` with only ``env``'s OTEL_* settings; (exit code, report)."""
    done = subprocess.run([str(TRACEQUEST), "doctor", "--json", *args], capture_output=True, text=True,
                          env=procs.environment(env, scrub=True), timeout=120, cwd=ROOT)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def codes(report: dict) -> set[str]:
    return {f["code"] for f in report["findings"] if not f["ok"]}


def grpc_env(backend, **extra) -> dict:
    return {"OTEL_SERVICE_NAME": "doctor-test", "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_grpc_endpoint,
            **extra}


# --- clean set-ups ----------------------------------------------------------------

def test_clean_grpc_setup_has_no_finding(backend):
    code, report = doctor("--url", backend.query_url, env=grpc_env(backend))
    assert (code, codes(report)) == (0, set()), report
    topics = [f["topic"] for f in report["findings"]]
    assert topics == ["environment", "environment", "packages", "ports", "round trip"], report
    assert "was found at" in report["findings"][-1]["found"]


def test_clean_http_setup_has_no_finding(backend):
    env = {"OTEL_SERVICE_NAME": "doctor-test", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_http_endpoint}
    code, report = doctor("--url", backend.query_url, env=env)
    assert (code, codes(report)) == (0, set()), report


def test_clean_collector_config_and_program(backend):
    env = grpc_env(backend, PITFALL_FIXED="1")
    code, report = doctor("--url", backend.query_url, "--collector-config", str(COLLECTOR_YAML),
                          "--run", f"{sys.executable} {PROGRAMS / 'thread_pool.py'}", env=env)
    assert (code, codes(report)) == (0, set()), report
    assert [f["topic"] for f in report["findings"]][-2:] == ["collector config", "run"]


def test_clean_server_with_requests(backend):
    port = free_port()
    env = grpc_env(backend, PORT=str(port))
    code, report = doctor("--url", backend.query_url, "--run",
                          f"{INSTRUMENT} {sys.executable} {ROOT / 'tests/data/doctor/plain_server.py'}",
                          "--request", f"http://127.0.0.1:{port}/", "--request", f"http://127.0.0.1:{port}/",
                          env=env)
    assert (code, codes(report)) == (0, set()), report


# --- the environment ----------------------------------------------------------------

def test_no_service_name(backend):
    env = grpc_env(backend)
    del env["OTEL_SERVICE_NAME"]
    _, report = doctor("--url", backend.query_url, env=env)
    assert codes(report) == {"no-service-name"}, report


def test_unknown_protocol(backend):
    _, report = doctor("--url", backend.query_url, env=grpc_env(backend, OTEL_EXPORTER_OTLP_PROTOCOL="http"))
    assert "unknown-protocol" in codes(report), report


def test_http_to_the_grpc_port_number():
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    _, report = doctor("--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert "http-to-grpc-port" in codes(report), report


def test_grpc_to_the_http_port_number():
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    _, report = doctor("--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert "grpc-to-http-port" in codes(report), report


def test_traces_endpoint_without_path(backend):
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": backend.otlp_http_endpoint}
    _, report = doctor("--url", backend.query_url, env=env)
    assert codes(report) == {"traces-endpoint-without-path", "span-lost"}, report


def test_endpoint_with_path(backend):
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_http_endpoint + "/v1/traces"}
    _, report = doctor("--url", backend.query_url, env=env)
    assert codes(report) == {"endpoint-with-path", "span-lost"}, report


# --- the ports and the round trip ------------------------------------------------------

def test_http_sent_to_a_grpc_server(backend):
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_grpc_endpoint}
    _, report = doctor("--url", backend.query_url, env=env)
    assert codes(report) == {"http-to-grpc-server", "span-lost"}, report


def test_grpc_sent_to_an_http_server(backend):
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_http_endpoint}
    _, report = doctor("--url", backend.query_url, env=env)
    assert codes(report) == {"grpc-to-http-server", "span-lost"}, report


def test_nothing_listens(backend):
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    _, report = doctor("--url", backend.query_url, env=env)
    assert codes(report) == {"nothing-listens"}, report


def test_span_lost_when_the_query_api_is_another_backend(backend):
    with start_backend(":memory:", grpc_port=0, http_port=0, query_port=0) as other:
        _, report = doctor("--url", other.query_url, env=grpc_env(backend))
    assert codes(report) == {"span-lost"}, report


def test_no_query_api(backend):
    _, report = doctor("--url", f"http://127.0.0.1:{free_port()}", env=grpc_env(backend))
    assert codes(report) == {"no-query-api"}, report


# --- the packages ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def mismatched_python() -> str:
    """A venv from PyPI: flask without instrumentation, the SDK downgraded alone (cached; ~1 min once)."""
    return str(throwaway_venv())


def test_versions_that_do_not_belong_together(backend, mismatched_python):
    _, report = doctor("--url", backend.query_url, "--python", mismatched_python, env=grpc_env(backend))
    found = [f["found"] for f in report["findings"] if f["code"] == "version-mismatch"]
    assert any("needs opentelemetry-semantic-conventions==0.66b1" in text and "0.61b0 is installed" in text
               for text in found), report


def test_library_without_its_instrumentation(backend, mismatched_python):
    _, report = doctor("--url", backend.query_url, "--python", mismatched_python, env=grpc_env(backend))
    missing = [f for f in report["findings"] if f["code"] == "missing-instrumentation"]
    assert [f["fix"] for f in missing] == ["pip install opentelemetry-instrumentation-flask"], report


def test_no_sdk(backend, tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    _, report = doctor("--url", backend.query_url, "--python", str(tmp_path / "bare" / "bin" / "python"),
                       env=grpc_env(backend))
    assert codes(report) == {"no-sdk"}, report


# --- a collector config ------------------------------------------------------------------

def _config(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(COLLECTOR_YAML.read_text())
    change(data)
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _collector_codes(backend, path: Path) -> set[str]:
    _, report = doctor("--url", backend.query_url, "--collector-config", str(path), env=grpc_env(backend))
    return codes(report)


def test_receiver_on_localhost(backend, tmp_path):
    def change(data):
        data["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "localhost:4317"
        del data["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert _collector_codes(backend, _config(tmp_path, change)) == {"receiver-on-localhost"}


def test_memory_limiter_not_first(backend, tmp_path):
    def change(data):
        data["service"]["pipelines"]["traces"]["processors"] = ["batch", "memory_limiter"]
    assert _collector_codes(backend, _config(tmp_path, change)) == {"memory-limiter-not-first"}


def test_batch_before_tail_sampling(backend, tmp_path):
    def change(data):
        data["processors"]["tail_sampling"] = {"policies": [{"name": "all", "type": "always_sample"}]}
        data["service"]["pipelines"]["traces"]["processors"] = ["memory_limiter", "batch", "tail_sampling"]
    assert _collector_codes(backend, _config(tmp_path, change)) == {"batch-before-tail-sampling"}


def test_pipeline_names_an_undefined_component(backend, tmp_path):
    def change(data):
        data["service"]["pipelines"]["traces"]["exporters"].append("otlp/zipkin")
    assert _collector_codes(backend, _config(tmp_path, change)) == {"undefined-component"}


def test_unreadable_config(backend, tmp_path):
    path = tmp_path / "collector.yaml"
    path.write_text("receivers: [otlp\n")
    assert _collector_codes(backend, path) == {"unreadable-config"}


# --- the learner's program ------------------------------------------------------------------

def _run_codes(backend, command: str, *requests: str, **env) -> set[str]:
    args = ["--url", backend.query_url, "--run", command]
    for url in requests:
        args += ["--request", url]
    _, report = doctor(*args, env=grpc_env(backend, **env))
    return codes(report)


def test_program_without_instrumentation_sends_nothing(backend):
    # job.py relies on opentelemetry-instrument; run bare, its tracer is the no-op one.
    assert _run_codes(backend, f"{sys.executable} {PROGRAMS / 'job.py'}") == {"no-spans"}


def test_program_under_unknown_service(backend):
    command = f"{INSTRUMENT} {sys.executable} {PROGRAMS / 'job.py'}"
    _, report = doctor("--url", backend.query_url, "--run", command,
                       env={"OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_grpc_endpoint,
                            "OTEL_SERVICE_NAME": ""})
    assert codes(report) == {"no-service-name", "unknown-service"}, report


def test_program_that_loses_the_context(backend):
    assert _run_codes(backend, f"{sys.executable} {PROGRAMS / 'thread_pool.py'}") == {"context-lost"}


def test_program_whose_http_call_loses_the_context(backend):
    command = f"{sys.executable} {PROGRAMS / 'uninstrumented_client.py'}"
    assert _run_codes(backend, command) == {"context-lost"}


def test_forked_workers_that_export_nothing(backend):
    assert _run_codes(backend, f"{sys.executable} {PROGRAMS / 'short_lived.py'}") == {"silent-workers"}


def test_spans_that_arrive_only_at_exit(backend):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    assert _run_codes(backend, f"{sys.executable} {LATE_SERVER}", url, PORT=str(port)) == {"spans-only-at-exit"}
