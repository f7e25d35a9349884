"""The whole lab, for real: four services and the embedded backend as processes."""

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import requests
from conftest import dispatch, trace_id_of

from tracequest.traces.client import QueryClient
from tracequest.lab import Lab, LabError, LabSettings
from tracequest.host.ports import Ports, PortInUse
from tracequest.host.procs import ProcessId
from tracequest.traces.timefmt import now_ns

SERVICES = {"frontend", "customer", "driver", "route"}
LOCK_EVENT = "waiting for lock behind"


def lock_waits(trace) -> list:
    return [e for s in trace for e in s.events if e.name.startswith(LOCK_EVENT)]


def concurrent_dispatches(lab, n=6):
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(lambda c: dispatch(lab, c), ["123", "392", "567", "731"] * (n // 4 + 1)))[:n]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [trace_id_of(r) for r in responses]


def test_one_dispatch_gives_one_complete_trace(lab, lab_client):
    before = now_ns()
    response = dispatch(lab, "123")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["driver"] and body["eta_seconds"] > 0
    trace = lab_client.wait_for_trace(trace_id_of(response), min_spans=30)
    assert len(trace) >= 30
    assert set(trace.services) == SERVICES
    assert len(trace.roots) == 1 and trace.orphans == []
    assert all(s.parent is not None for s in trace if s is not trace.root)
    assert len({s.span_id for s in trace}) == len(trace)      # no two spans share an id
    assert trace.root.service == "frontend" and trace.root.kind == "SERVER"
    assert "unknown_service" not in {s.resource.get("service.name") for s in trace}
    # Exactly one trace: every service's spans since the request belong to it.
    for service in SERVICES:
        found = lab_client.find_traces(service, start_ns=before)
        assert [t.trace_id for t in found] == [trace.trace_id], service


def test_sql_span_and_baggage(lab, lab_client):
    trace = lab_client.wait_for_trace(trace_id_of(dispatch(lab, "392")), min_spans=30)
    sql = [s for s in trace if s.service == "customer" and any(k.startswith("db.") for k in s.attributes)]
    assert sql, "no span with db.* attributes in the customer service"
    assert sql[0].duration_ms >= 250          # the simulated remote-database delay sits inside the query
    customer_server = trace.find(service="customer", kind="SERVER")[0]
    assert customer_server.attributes.get("customer.id") == "392"
    assert customer_server.attributes.get("session.id")


def test_driver_retries_show_as_error_spans(lab, lab_client):
    # About one Redis read in twelve times out; keep dispatching (bounded) until one did.
    traces, failed = [], []
    for _ in range(5):
        batch = [lab_client.wait_for_trace(i, min_spans=30) for i in concurrent_dispatches(lab, 8)]
        traces += batch
        failed += [s for t in batch for s in t.errors if s.service == "driver"]
        if failed:
            break
    assert failed, f"{len(traces)} dispatches without a single simulated Redis timeout"
    assert any(e.name == "exception" for s in failed for e in s.events)
    assert all(t.find(service="driver", kind="SERVER")[0].status != "ERROR" for t in traces)


def test_lock_contention_shows_under_concurrent_load(lab, lab_client):
    traces = [lab_client.wait_for_trace(i, min_spans=30) for i in concurrent_dispatches(lab, 6)]
    assert sum(len(lock_waits(t)) for t in traces) > 0, "no lock-wait events under concurrent load"


@pytest.mark.parametrize("query, status", [("", 400), ("customer=abc", 400), ("customer=999", 404)])
def test_bad_input_answers_4xx_with_an_error_span(lab, lab_client, query, status):
    response = requests.get(f"{lab.frontend_url}/dispatch?{query}", timeout=10)
    assert response.status_code == status
    assert "error" in response.json()
    trace = lab_client.wait_for_trace(trace_id_of(response))
    assert trace.root.status == "ERROR"
    assert dispatch(lab, "123").status_code == 200    # the service stays up


def test_frontend_page_and_config(lab):
    page = requests.get(f"{lab.frontend_url}/", timeout=5)
    assert page.status_code == 200 and "dispatch" in page.text and "123" in page.text
    config = requests.get(f"{lab.frontend_url}/config", timeout=5).json()
    assert config  # the effective flags are reported


def test_up_again_is_a_noop_and_status_is_healthy(lab):
    pids = {name: info["pid"] for name, info in lab.status().items()}
    assert all(info["healthy"] for info in lab.status().values())
    again = Lab(lab.settings, lab.home)
    assert again.up() is False
    assert {name: info["pid"] for name, info in again.status().items()} == pids


def test_port_in_use_names_port_role_and_process(tmp_path):
    ports = Ports.free()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports.driver))
        holder.listen()
        with pytest.raises(PortInUse) as failure:
            Lab(LabSettings(ports=ports), tmp_path).up()
    message = str(failure.value)
    assert f"port {ports.driver} (driver)" in message and f"process {os.getpid()}" in message


def test_fixed_mutex_removes_lock_waits_and_down_flushes_and_stops_everything(tmp_path):
    lab = Lab(LabSettings(ports=Ports.free(), service_env={"TQ_FIX_DISABLE_DB_CONN_MUTEX": "1"}), tmp_path)
    lab.up()
    try:
        client = QueryClient(lab.query_url)
        traces = [client.wait_for_trace(i, min_spans=30) for i in concurrent_dispatches(lab, 6)]
        assert all(lock_waits(t) == [] for t in traces)
        last = trace_id_of(dispatch(lab, "731"))
    finally:
        pids = [info["pid"] for info in lab.status().values()]
        lab.down()
    assert not any(_alive(pid) for pid in pids)
    assert not lab.state_path.exists()
    # Spans of the last request were flushed on the way down and kept on disk.
    from tracequest.backend import start_backend

    with start_backend(tmp_path / "spans.db", grpc_port=0, http_port=0, query_port=0) as reopened:
        assert len(QueryClient(reopened.query_url).get_trace(last)) >= 30


def test_a_downstream_that_is_down_gives_503_quickly(tmp_path):
    ports = Ports.free()
    # Only the backend and the frontend: customer, driver and route are down.
    lab = Lab(LabSettings(ports=ports, services=("frontend",)), tmp_path)
    lab.up()
    try:
        started = time.monotonic()
        response = dispatch(lab, "123")
        assert response.status_code in (502, 503)
        assert time.monotonic() - started < 3
        assert "customer" in response.json()["error"]
        trace = QueryClient(lab.query_url).wait_for_trace(trace_id_of(response))
        assert trace.errors
    finally:
        lab.down()


def test_start_failure_reports_the_log(tmp_path):
    lab = Lab(LabSettings(ports=Ports.free(), service_env={"TQ_FIX_ROUTE_WORKER_POOL_SIZE": "zero"}), tmp_path)
    with pytest.raises(LabError) as failure:
        lab.up(timeout=20)
    assert "frontend" in str(failure.value) and "Last lines of" in str(failure.value)
    assert not lab.state_path.exists()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def test_down_never_signals_a_process_the_lab_did_not_start(tmp_path):
    """lab.json naming another program (pid reuse after a reboot, an old state file): left alone."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        started = ProcessId.of(stranger.pid).started
        state = {"settings": LabSettings(ports=Ports.free()).as_state(),
                 # The lab's backend had this pid once, but the process now holding it started later.
                 "processes": {"backend": {"pid": stranger.pid, "started": started - 3600},
                               # A state file from before start times were recorded.
                               "frontend": stranger.pid}}
        (tmp_path / "lab.json").write_text(json.dumps(state))
        env = {**os.environ, "TRACEQUEST_HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "tracequest.cli", "down"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        time.sleep(0.3)
        assert stranger.poll() is None, "down signalled a process the lab did not start"
        said = done.stdout + done.stderr
        assert f"pid {stranger.pid} now belongs to another program" in said
        assert "left it alone" in said and "no start time" in said
        assert not (tmp_path / "lab.json").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_settings_round_trip_through_lab_json(tmp_path):
    settings = LabSettings(ports=Ports.free(), services=("frontend", "customer"),
                           service_env={"TQ_FIX_DB_QUERY_DELAY": "5ms"}, max_spans=1000)
    assert LabSettings.from_state(settings.as_state()) == settings
    assert replace(settings, backend="jaeger").backend == "jaeger"
    assert settings.services == ("customer", "frontend")  # start order, whatever order was given


def test_a_misspelt_knob_is_refused_with_the_nearest_name():
    with pytest.raises(LabError, match="TQ_FIX_DB_QUERY_DELAY"):
        LabSettings(service_env={"TQ_FIX_DB_QUERY_DELY": "5ms"})
