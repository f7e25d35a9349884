"""`tracequest doctor`, one real broken set-up per finding, and clean set-ups with no false alarm.

Every case runs the real command in a subprocess with a real environment, against a
real backend on free ports: exporters really send (or fail to), ports really answer,
programs really run. Only the collector configs are files and nothing more, as the
finding is about the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tracequest.host import procs
from tracequest.backend import start_backend
from tracequest.pitfalls import container
from tracequest.pitfalls.scenarios import APPS
from tracequest.pitfalls.venvs import throwaway_venv
from tracequest.host.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
TRACEQUEST = Path(sys.executable).with_name("tracequest")
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
COLLECTOR_YAML = ROOT / "compose" / "collector" / "collector.yaml"
LATE_SERVER = Path(__file__).resolve().parent / "data" / "doctor" / "late_server.py"


def doctor(*args: str, env: dict | None = None) -> tuple[int, dict]:
    """Run `tracequest doctor --json ARGS` with only ``env``'s OTEL_* settings; (exit code, report).

    Whether the doctor runs in a container is said, not guessed (TRACEQUEST_CONTAINER=0
    unless ``env`` says otherwise), so a test means the same on a laptop and in a CI container.
    """
    env = procs.environment({"TRACEQUEST_CONTAINER": "0", **(env or {})}, scrub=True)
    done = subprocess.run([str(TRACEQUEST), "doctor", "--json", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)
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
    assert topics == ["environment", "environment", "packages", "ports", "round trip", "collector config"], report
    assert "was found at" in report["findings"][-2]["found"]
    assert "compose/: the receivers of the" in report["findings"][-1]["found"]  # the lab's own compose/


def test_clean_http_setup_has_no_finding(backend):
    env = {"OTEL_SERVICE_NAME": "doctor-test", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_http_endpoint}
    code, report = doctor("--url", backend.query_url, env=env)
    assert (code, codes(report)) == (0, set()), report


def test_clean_collector_config_and_program(backend):
    env = grpc_env(backend, PITFALL_FIXED="1")
    code, report = doctor("--url", backend.query_url, "--collector-config", str(COLLECTOR_YAML),
                          "--run", f"{sys.executable} {APPS / 'thread_pool.py'}", env=env)
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


# --- localhost inside a container ----------------------------------------------------------

def test_a_container_is_told_by_what_runtimes_leave_behind(tmp_path):
    assert container.detect({}, tmp_path) == ""
    assert "KUBERNETES_SERVICE_HOST" in container.detect({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/\n")
    assert container.detect({}, tmp_path) == ""
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/kubepods/besteffort/pod1234/abcd\n")
    assert container.detect({}, tmp_path) == "/proc/1/cgroup names kubepods"
    (tmp_path / ".dockerenv").touch()
    assert container.detect({}, tmp_path) == "/.dockerenv exists"
    assert container.detect({"TRACEQUEST_CONTAINER": "0"}, tmp_path) == ""
    assert container.detect({"TRACEQUEST_CONTAINER": "1"}, Path(tmp_path / "none")) == "TRACEQUEST_CONTAINER=1"


def test_localhost_inside_a_container():
    env = {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://localhost:{free_port()}",
           "TRACEQUEST_CONTAINER": "1"}
    code, report = doctor("--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert (code, codes(report)) == (1, {"localhost-in-container"}), report
    found = next(f for f in report["findings"] if not f["ok"])
    assert "runs in a container (TRACEQUEST_CONTAINER=1)" in found["found"]
    assert found["fix"].startswith("name the collector's container instead, e.g. "
                                   "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317")
    text = subprocess.run([str(TRACEQUEST), "doctor", "--url", f"http://127.0.0.1:{free_port()}"], cwd=ROOT,
                          env=procs.environment({**env, "PYTHONIOENCODING": "utf-8"}, scrub=True),
                          capture_output=True, text=True, timeout=120).stdout
    assert [line for line in text.splitlines() if line.startswith("✗")] == \
        [f"✗ environment: {found['found']} → {found['fix']}"], text


def test_localhost_inside_a_container_with_a_sidecar_is_no_problem(backend):
    """Something answers on localhost in the container (a collector beside it): no false alarm."""
    code, report = doctor("--url", backend.query_url, env=grpc_env(backend, TRACEQUEST_CONTAINER="1"))
    assert (code, codes(report)) == (0, set()), report


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
    """A venv from PyPI: Flask instrumentation 0.48b0 under distro 0.66b1, requests without its
    instrumentation (cached; ~1 min once). Skips without PyPI on a learner's machine, fails on CI."""
    try:
        return str(throwaway_venv())
    except subprocess.CalledProcessError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"building the throw-away venv needs PyPI ({exc.stderr.strip()[-200:]}); with network, run: "
                    ".venv/bin/python -c 'from tracequest.pitfalls.venvs import throwaway_venv; throwaway_venv()'")


def test_versions_that_do_not_belong_together(backend, mismatched_python):
    _, report = doctor("--url", backend.query_url, "--python", mismatched_python, env=grpc_env(backend))
    found = [f["found"] for f in report["findings"] if f["code"] == "version-mismatch"]
    assert ("opentelemetry-instrumentation-flask 0.48b0 needs opentelemetry-instrumentation==0.48b0, "
            "but opentelemetry-instrumentation 0.66b1 is installed") in found, report


def test_library_without_its_instrumentation(backend, mismatched_python):
    _, report = doctor("--url", backend.query_url, "--python", mismatched_python, env=grpc_env(backend))
    missing = [f for f in report["findings"] if f["code"] == "missing-instrumentation"]
    assert [f["fix"] for f in missing] == ["pip install opentelemetry-instrumentation-requests"], report


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


def _on_localhost(data):
    data["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "localhost:4317"
    data["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = "${env:TQ_COLLECTOR_HOST:-0.0.0.0}:4318"


def test_receiver_on_localhost_is_right_for_a_collector_run_natively(backend, tmp_path):
    _, report = doctor("--url", backend.query_url, "--collector-config", str(_config(tmp_path, _on_localhost)),
                       env=grpc_env(backend))
    assert codes(report) == set(), report
    assert "they bind localhost: right for a collector run on this machine" in report["findings"][-1]["found"]


def test_receiver_on_localhost_in_a_container(backend, tmp_path):
    """The doctor runs in a container, so the config it is given is for one."""
    _, report = doctor("--url", backend.query_url, "--collector-config", str(_config(tmp_path, _on_localhost)),
                       env=grpc_env(backend, TRACEQUEST_CONTAINER="1"))
    found = [f["found"] for f in report["findings"] if not f["ok"]]
    assert found == ["collector.yaml: this process runs in a container (TRACEQUEST_CONTAINER=1), and its "
                     "receiver otlp (grpc) has endpoint localhost:4317: no other container can reach it"], report


def test_receiver_on_localhost_mounted_by_a_compose_file(backend, tmp_path):
    """compose/stack.yaml mounts collector/collector.yaml into a container, whose environment
    sets the http receiver's host to 127.0.0.1: both receivers are named, from --compose and
    from --collector-config alike."""
    (tmp_path / "compose" / "collector").mkdir(parents=True)
    config = _config(tmp_path / "compose" / "collector", _on_localhost)
    (tmp_path / "compose" / "stack.yaml").write_text(yaml.safe_dump({"services": {
        "otelcol": {"image": "otel/opentelemetry-collector-contrib",
                    "volumes": ["./collector/collector.yaml:/etc/otelcol-contrib/config.yaml:ro"],
                    "environment": ["TQ_COLLECTOR_HOST=127.0.0.1"]},
        "app": {"image": "python", "volumes": ["./app:/app"]}}}))
    for args in (["--compose", str(tmp_path / "compose")], ["--collector-config", str(config)]):
        _, report = doctor("--url", backend.query_url, *args, env=grpc_env(backend))
        found = [f["found"] for f in report["findings"] if not f["ok"]]
        assert found == [f"collector.yaml: stack.yaml mounts it into the otelcol container, and its receiver "
                         f"otlp ({protocol}) has endpoint {endpoint}: no other container can reach it"
                         for protocol, endpoint in (("grpc", "localhost:4317"), ("http", "127.0.0.1:4318"))], report


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
    assert _run_codes(backend, f"{sys.executable} {APPS / 'job.py'}") == {"no-spans"}


def test_program_under_unknown_service(backend):
    command = f"{INSTRUMENT} {sys.executable} {APPS / 'job.py'}"
    _, report = doctor("--url", backend.query_url, "--run", command,
                       env={"OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_grpc_endpoint,
                            "OTEL_SERVICE_NAME": ""})
    assert codes(report) == {"no-service-name", "unknown-service"}, report


def test_program_that_loses_the_context(backend):
    assert _run_codes(backend, f"{sys.executable} {APPS / 'thread_pool.py'}") == {"context-lost"}


def test_program_whose_http_call_loses_the_context(backend):
    command = f"{sys.executable} {APPS / 'uninstrumented_client.py'}"
    assert _run_codes(backend, command) == {"context-lost"}


def test_forked_workers_that_export_nothing(backend):
    assert _run_codes(backend, f"{sys.executable} {APPS / 'short_lived.py'}") == {"silent-workers"}


def test_spans_that_arrive_only_at_exit(backend):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    assert _run_codes(backend, f"{sys.executable} {LATE_SERVER}", url, PORT=str(port)) == {"spans-only-at-exit"}
