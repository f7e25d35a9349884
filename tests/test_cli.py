"""The `tracequest` command, run as a learner runs it, against a running lab."""

import json
import os
import subprocess
import sys

import pytest
from conftest import dispatch, trace_id_of

from tracequest.ports import free_port


def tracequest(*args, home, timeout=120):
    env = {**os.environ, "TRACEQUEST_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tracequest.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def trace_id(lab, lab_client):
    response = dispatch(lab, "567")
    lab_client.wait_for_trace(trace_id_of(response), min_spans=30)
    return trace_id_of(response)


def test_traces_lists_the_request(lab, trace_id):
    result = tracequest("traces", "--limit", "50", home=lab.home)
    assert result.returncode == 0, result.stderr
    assert trace_id in result.stdout and "frontend: GET /dispatch" in result.stdout


def test_traces_json_and_filters(lab, trace_id):
    result = tracequest("traces", "--json", "--service", "customer", "--min-duration", "200ms",
                        "--limit", "50", home=lab.home)
    rows = json.loads(result.stdout)
    assert trace_id in {r["traceId"] for r in rows}
    assert all(r["durationMs"] >= 200 for r in rows)
    none = json.loads(tracequest("traces", "--json", "--min-duration", "1h", home=lab.home).stdout)
    assert none == []
    bad = tracequest("traces", "--min-duration", "soon", home=lab.home)
    assert bad.returncode == 1 and "--min-duration" in bad.stderr and "Go duration" in bad.stderr


def test_show_draws_the_waterfall(lab, trace_id):
    result = tracequest("show", trace_id, "--width", "140", home=lab.home)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace_id}")
    assert any("GET /dispatch" in line and line.startswith("*") for line in lines)
    assert any("SELECT" in line for line in lines)
    as_json = json.loads(tracequest("show", trace_id, "--json", home=lab.home).stdout)
    assert as_json["result"]["resourceSpans"]


def test_show_unknown_trace_says_what_to_do(lab):
    result = tracequest("show", "ab" * 16, home=lab.home)
    assert result.returncode == 1
    assert "is not in the backend" in result.stderr and "tracequest traces" in result.stderr


def test_status_and_up_again(lab):
    status = tracequest("status", home=lab.home)
    assert status.returncode == 0 and status.stdout.count(" up ") == 5, status.stdout
    again = tracequest("up", home=lab.home)
    assert again.returncode == 0 and "already running" in again.stdout
    other = tracequest("up", "--fix-disable-db-conn-mutex", home=lab.home)
    assert other.returncode == 1 and "tracequest down" in other.stderr


def test_load_prints_progress_and_summary(lab):
    result = tracequest("load", "-n", "6", "-c", "3", home=lab.home)
    assert result.returncode == 0, result.stderr
    assert "6/6" in result.stderr
    assert "6 requests in" in result.stdout and "p95" in result.stdout


def test_no_backend_gives_plain_words(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    result = tracequest("traces", "--url", url, home=tmp_path)
    assert result.returncode == 1
    assert f"no trace backend answers at {url}" in result.stderr and "make up" in result.stderr
    assert "Traceback" not in result.stderr
    status = tracequest("status", home=tmp_path)
    assert status.returncode == 1 and "make up" in status.stdout
    down = tracequest("down", home=tmp_path)
    assert down.returncode == 0 and "No lab is running" in down.stdout
    load = tracequest("load", home=tmp_path)
    assert load.returncode == 1 and "not running" in load.stderr
