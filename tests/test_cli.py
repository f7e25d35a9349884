"""The `tracequest` command, run as a learner runs it: in a shell, in pipes, on a terminal.

Bad values are refused in-process through ``main([...])``; what depends on pipes,
terminals and exit codes runs the real command in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import stat
import subprocess
import sys
import threading
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from conftest import dispatch, trace_id_of
from otlp_payloads import designed_trace, now_base_ns

from services.common.knobs import KNOBS, knob
from tracequest.programs import collector, jaeger
from tracequest.cli import build_parser, main
from tracequest.cli.options import lab_settings, up_knobs
from tracequest.traces.client import QueryClient
from tracequest.lab import Lab
from tracequest.lab.settings import SERVICES  # the backend and each service show in `status`
from tracequest.host.ports import Ports, free_port


def tracequest(*args, home, env=None, timeout=120, **kwargs):
    """The command as `python -m tracequest`, with its lab state in `home`."""
    full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env.update({"TRACEQUEST_HOME": str(home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "tracequest", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, **kwargs)


def on_terminal(*args, home, env=None, stream="stdout", timeout=60) -> tuple[str, str]:
    """Run the command with `stream` on a pseudo-terminal; (terminal output, the other stream)."""
    main_fd, term_fd = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env.update({"TRACEQUEST_HOME": str(home), **(env or {})})
    other = subprocess.PIPE
    child = subprocess.Popen([sys.executable, "-m", "tracequest", *args], env=full_env,
                             stdout=term_fd if stream == "stdout" else other,
                             stderr=term_fd if stream == "stderr" else other)
    os.close(term_fd)
    chunks = []
    while True:
        ready, _, _ = select.select([main_fd], [], [], timeout)
        if not ready:
            child.kill()
            pytest.fail(f"tracequest {' '.join(args)} wrote nothing for {timeout}s")
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    rest = (child.stderr if stream == "stdout" else child.stdout).read().decode()
    assert child.wait(timeout) == 0, rest
    return b"".join(chunks).decode(errors="replace"), rest


@pytest.fixture
def listener():
    """A real HTTP server on a free port that records every request; nothing should reach it."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def lab_home(tmp_path, monkeypatch):
    """An empty lab home with every lab port moved to a free one (a safety net for `up`)."""
    monkeypatch.setenv("TRACEQUEST_HOME", str(tmp_path))
    for name, port in Ports.free().as_dict().items():
        monkeypatch.setenv(knob(f"{name.replace('_', '-')}-port").env, str(port))
    for name in [n for n in os.environ if n.startswith("TQ_") and not n.endswith("_PORT")]:
        monkeypatch.delenv(name)
    yield tmp_path
    stray = Lab.from_state(tmp_path)
    if stray is not None:
        stray.down(log=lambda *_: None)
        pytest.fail("a test that expected a refusal started a lab")


def post(backend, documents: list[dict]) -> None:
    """Send export requests to a backend's OTLP/HTTP receiver."""
    for document in documents:
        response = requests.post(f"{backend.otlp_http_endpoint}/v1/traces", data=json.dumps(document),
                                 headers={"Content-Type": "application/json"}, timeout=30)
        assert response.status_code == 200, response.text


@pytest.fixture
def stored_trace(backend) -> str:
    """One designed trace (6 spans, 100 ms) a few seconds old in a fresh backend."""
    document, ids = designed_trace(base_ns=now_base_ns())
    post(backend, [document])
    QueryClient(backend.query_url).wait_for_trace(ids["trace"], min_spans=6)
    return ids["trace"]


# --- help ----------------------------------------------------------------------

def all_parsers(parser=None, path=("tracequest",)):
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, (*path, name))


def test_every_command_and_option_has_help_and_shows_its_default():
    commands = dict(all_parsers())
    assert {("tracequest", "backends", "build"), ("tracequest", "backends", "status"),
            ("tracequest", "up"), ("tracequest", "load")} <= set(commands)
    for path, parser in commands.items():
        assert parser.description, f"`{' '.join(path)} --help` has no description"
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                   argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"{' '.join(path)} {name} has no help"
            if action.default not in (None, False):
                assert "default" in formatter._expand_help(action), f"{' '.join(path)} {name}"


def test_help_prints_defaults(capsys):
    assert main(["traces", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--limit N" in out and "(default: 20)" in out and "(default: 1h)" in out
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_up_takes_every_port_and_every_service_knob(monkeypatch):
    monkeypatch.delenv("TQ_FIX_DB_QUERY_DELAY", raising=False)
    up = dict(all_parsers())[("tracequest", "up")]
    flags = {s: a for a in up._actions for s in a.option_strings}
    for field in fields(Ports):
        assert f"--{field.name.replace('_', '-')}-port" in flags, field.name
    service_knobs = [k for k in KNOBS if k.group in ("fix", "failure", "delay")
                     and {"frontend", "customer", "driver", "route"} & set(k.readers)]
    assert service_knobs and set(service_knobs) <= set(up_knobs())
    for k in [*service_knobs, knob("max-spans"), knob("max-age")]:
        assert k.flag in flags
        assert f"env {k.env}" in flags[k.flag].help and k.show(k.default) in flags[k.flag].help
    assert "(default: 300ms; env TQ_FIX_DB_QUERY_DELAY)" in flags["--fix-db-query-delay"].help


# --- values refused before anything is sent --------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["traces", "--limit", "0"], "--limit: must be at least 1, not 0"),
    (["traces", "--limit", "ten"], "'ten' is not a whole number"),
    (["traces", "--min-duration", "soon"], "--min-duration: 'soon' is not a duration"),
    (["traces", "--min-duration", "5"], "has no unit"),
    (["traces", "--lookback", "0"], "--lookback: '0' is no time at all"),
    (["show", "xyz"], "'xyz' is not a trace id; a trace id is 1 to 32 hex digits"),
    (["show", "a" * 33], "is not a trace id"),
    (["show", "abc", "--width", "0"], "--width: must be at least 1"),
    (["load", "-n", "0"], "--requests: must be at least 1, not 0"),
    (["load", "-c", "-2"], "--concurrency: must be at least 1, not -2"),
])
def test_bad_values_exit_2_with_one_line_before_any_request(argv, words, listener, capsys, lab_home):
    url, seen = listener
    argv = [*argv, "--frontend" if argv[0] == "load" else "--url", url]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tracequest {argv[0]}: error: ") and words in err, err
    assert err.count("\n") == 1, err
    assert seen == []


@pytest.mark.parametrize("argv, words", [
    (["up", "--fix-db-query-delay", "soon"], "--fix-db-query-delay: 'soon' is not a duration"),
    (["up", "--fix-disable-db-conn-mutex", "maybe"], "'maybe' is not yes or no"),
    (["up", "--fix-route-worker-pool-size", "0"], "is not a count"),
    (["up", "--redis-error-rate", "2"], "is not a rate between 0 and 1"),
    (["up", "--frontend-port", "0"], "--frontend-port: the lab needs a fixed port"),
    (["up", "--query-port", "70000"], "is not a port number"),
    (["up", "--max-spans", "0"], "--max-spans: '0' is not a count"),
    (["up", "--max-age", "a day"], "--max-age: 'a day' is not a duration"),
    (["up", "--collector-config", "missing.yaml"], "nor a YAML file that exists"),
    (["up", "--collector-config", "pii"], "--collector-config applies to --backend collector or fan-out only"),
])
def test_up_refuses_bad_values(argv, words, capsys, lab_home):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracequest up: error: ") and words in err and err.count("\n") == 1, err
    assert not (lab_home / "lab.json").exists()


def test_up_refuses_two_programs_on_one_port(capsys, lab_home, monkeypatch):
    port = os.environ["TQ_QUERY_PORT"]
    assert main(["up", "--frontend-port", port]) == 2
    err = capsys.readouterr().err
    assert f"port {port} is set for both" in err and "--frontend-port and --query-port" in err


def test_up_reads_environment_twins_and_options_win(lab_home, monkeypatch):
    monkeypatch.setenv("TQ_FIX_DB_QUERY_DELAY", "1m30s")
    monkeypatch.setenv("TQ_FIX_DISABLE_DB_CONN_MUTEX", "yes")
    monkeypatch.setenv("TQ_MAX_SPANS", "5000")
    settings = lab_settings(build_parser().parse_args(["up", "--frontend-port", "23456"]))
    assert settings.ports.frontend == 23456
    assert settings.ports.query == int(os.environ["TQ_QUERY_PORT"])
    assert settings.service_env == {"TQ_FIX_DB_QUERY_DELAY": "1m30s", "TQ_FIX_DISABLE_DB_CONN_MUTEX": "on"}
    assert settings.max_spans == 5000 and settings.max_age_s is None
    flagged = lab_settings(build_parser().parse_args(["up", "--fix-db-query-delay", "5ms",
                                                      "--max-age", "2h"]))
    assert flagged.service_env["TQ_FIX_DB_QUERY_DELAY"] == "5ms" and flagged.max_age_s == 7200
    up = dict(all_parsers())[("tracequest", "up")]
    shown = next(a.help for a in up._actions if "--fix-db-query-delay" in a.option_strings)
    assert "(default: 1m30s, from $TQ_FIX_DB_QUERY_DELAY; without it 300ms)" in shown


@pytest.mark.parametrize("name, value, words", [
    ("TQ_FIX_DB_QUERY_DELAY", "soon", "TQ_FIX_DB_QUERY_DELAY='soon' in your environment: 'soon' is not a duration"),
    ("TQ_FIX_DB_QUERY_DELEY", "5ms", "unknown setting TQ_FIX_DB_QUERY_DELEY; did you mean TQ_FIX_DB_QUERY_DELAY?"),
    ("TQ_FRONTEND_PORT", "0", "TQ_FRONTEND_PORT='0' in your environment: the lab needs a fixed port"),
])
def test_up_refuses_bad_environment_twins(name, value, words, lab_home, monkeypatch, capsys):
    monkeypatch.setenv(name, value)
    assert main(["up"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracequest up: error: ") and words in err, err


def test_storage_options_belong_to_the_embedded_backend(lab_home):
    from tracequest.cli.options import UsageError

    with pytest.raises(UsageError, match="--max-spans applies to the embedded backend only"):
        lab_settings(build_parser().parse_args(["up", "--backend", "jaeger", "--max-spans", "10"]))


def test_the_scale_out_topology_implies_the_collector_backend(lab_home):
    from tracequest.cli.options import UsageError

    settings = lab_settings(build_parser().parse_args(["up", "--topology", "scale-out"]))
    assert (settings.backend, settings.topology) == ("collector", "scale-out")
    assert lab_settings(build_parser().parse_args(["up"])).backend == "embedded"
    with pytest.raises(UsageError, match="leave out --backend jaeger"):
        lab_settings(build_parser().parse_args(["up", "--topology", "scale-out", "--backend", "jaeger"]))
    with pytest.raises(UsageError, match="--collector-config does not apply"):
        lab_settings(build_parser().parse_args(["up", "--topology", "scale-out",
                                                "--collector-config", "pii"]))


# --- pipes, terminals and colours ------------------------------------------------

def test_a_closed_pipe_ends_quietly(stored_trace, backend, tmp_path):
    for argv in (["--help"], ["traces", "--json", "--url", backend.query_url],
                 ["show", stored_trace, "--url", backend.query_url]):
        child = subprocess.Popen([sys.executable, "-m", "tracequest", *argv], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env={**os.environ, "TRACEQUEST_HOME": str(tmp_path)})
        child.stdout.close()  # the reader is gone before the first write
        err = child.stderr.read().decode()
        # argparse itself drops help it cannot write (exit 0); our own output ends with 141.
        assert child.wait(60) == (0 if argv == ["--help"] else 141) and err == "", (argv, err)


def test_json_piped_into_head(backend, tmp_path):
    # 1000 traces make ~250 kB of JSON: far more than a pipe holds, so head leaves mid-write.
    base = now_base_ns()
    documents = [designed_trace(base_ns=base + i * 1_000_000)[0] for i in range(1000)]
    merged = {"resourceSpans": [rs for d in documents for rs in d["resourceSpans"]]}
    post(backend, [merged])
    command = (f"set -o pipefail; {sys.executable} -m tracequest traces --json --limit 1000 "
               f"--url {backend.query_url} | head -1")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TRACEQUEST_HOME": str(tmp_path)})
    assert result.stdout == "[\n"
    assert result.stderr == "" and result.returncode == 141


def test_waterfall_colours_only_on_a_terminal_without_no_color(stored_trace, backend, tmp_path):
    show = ["show", stored_trace, "--url", backend.query_url, "--width", "100"]
    terminal, _ = on_terminal(*show, home=tmp_path)
    assert "\x1b[" in terminal and "GET /dispatch" in terminal
    plain, _ = on_terminal(*show, home=tmp_path, env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "GET /dispatch" in plain
    piped = tracequest(*show, home=tmp_path)
    assert piped.returncode == 0 and "GET /dispatch" in piped.stdout and "\x1b[" not in piped.stdout
    forced = tracequest(*show, "--color", "always", home=tmp_path)
    assert "\x1b[" in forced.stdout


def test_short_trace_ids_are_padded_as_jaeger_pads_them(stored_trace, backend, tmp_path):
    result = tracequest("show", stored_trace.upper(), "--url", backend.query_url, home=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"trace {stored_trace}")
    missing = tracequest("show", "abc", "--url", backend.query_url, home=tmp_path)
    assert missing.returncode == 1 and "0" * 29 + "abc" in missing.stderr


# --- against a running lab -------------------------------------------------------

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
    assert status.returncode == 0 and status.stdout.count(" up ") == 1 + len(SERVICES), status.stdout
    again = tracequest("up", home=lab.home)
    assert again.returncode == 0 and "already running" in again.stdout
    other = tracequest("up", "--fix-disable-db-conn-mutex", home=lab.home)
    assert other.returncode == 1 and "tracequest down" in other.stderr
    assert "TQ_FIX_DISABLE_DB_CONN_MUTEX=on" in other.stderr


def test_load_progress_is_plain_lines_in_a_pipe(lab):
    result = tracequest("load", "-n", "6", "-c", "3", home=lab.home)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    assert "6/6 requests done\n" in result.stderr
    assert "6 requests in" in result.stdout and "p95" in result.stdout


def test_load_progress_is_a_bar_on_a_terminal(lab):
    terminal, out = on_terminal("load", "-n", "4", "-c", "2", home=lab.home, stream="stderr")
    assert "\r[" in terminal and "4/4" in terminal
    assert "4 requests in" in out


def test_up_moves_every_port_and_every_command_finds_the_lab(tmp_path):
    """Ports by option and by environment twin; then status, traces, show, load and down follow."""
    chosen = Ports.free()
    names = [f.name for f in fields(Ports)]
    by_option = [arg for name in names[::2]
                 for arg in (f"--{name.replace('_', '-')}-port", str(getattr(chosen, name)))]
    by_env = {knob(f"{name.replace('_', '-')}-port").env: str(getattr(chosen, name)) for name in names[1::2]}
    home = tmp_path / "home"
    try:
        up = tracequest("up", *by_option, "--fix-db-query-delay", "5ms", "--max-spans", "5000",
                        home=home, env=by_env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{chosen.frontend}/" in up.stdout
        settings = Lab.from_state(home).settings
        assert settings.ports == chosen
        assert settings.service_env == {"TQ_FIX_DB_QUERY_DELAY": "5ms"} and settings.max_spans == 5000

        status = tracequest("status", home=home)
        assert status.returncode == 0 and status.stdout.count(" up ") == 1 + len(SERVICES), status.stdout
        response = requests.get(f"http://127.0.0.1:{chosen.frontend}/dispatch",
                                params={"customer": "123"}, timeout=30)
        trace = QueryClient(f"http://127.0.0.1:{chosen.query}").wait_for_trace(
            trace_id_of(response), min_spans=30)
        selects = [s for s in trace.spans if s.name.startswith("SELECT")]
        assert selects and all(s.duration_ns < 100_000_000 for s in selects)  # 5ms, not 300ms

        listed = tracequest("traces", "--json", "--limit", "50", home=home)
        assert trace.trace_id in {row["traceId"] for row in json.loads(listed.stdout)}
        shown = tracequest("show", trace.trace_id, home=home)
        assert shown.returncode == 0 and shown.stdout.startswith(f"trace {trace.trace_id}")
        load = tracequest("load", "-n", "2", "-c", "2", home=home)
        assert load.returncode == 0 and f":{chosen.frontend}/dispatch" in load.stdout
        other = tracequest("up", "--fix-db-query-delay", "7ms", home=home, env=by_env)
        assert other.returncode == 1 and "TQ_FIX_DB_QUERY_DELAY=7ms" in other.stderr

        down = tracequest("down", home=home)
        assert down.returncode == 0 and "backend" in down.stdout
        assert tracequest("status", home=home).returncode == 1
    finally:
        left = Lab.from_state(home)
        if left is not None:
            left.down(log=lambda *_: None)


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


# --- python -m, and the backends command -----------------------------------------

def test_python_dash_m_tracequest(tmp_path):
    result = tracequest("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("tracequest ")


def fake_binary(path: Path) -> Path:
    """An executable file where a binary is looked for (it is never run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_backends_status_says_what_is_built_and_how_to_build(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JAEGER_BIN", raising=False)
    monkeypatch.delenv("COLLECTOR_BIN", raising=False)
    assert main(["backends", "status"]) == 1
    out = capsys.readouterr().out
    assert jaeger.JAEGER_VERSION in out and "not built" in out and "tracequest backends build" in out
    assert collector.COLLECTOR_VERSION in out
    built = fake_binary(jaeger.cached_jaeger_path())
    fake_binary(collector.cached_collector_path())
    monkeypatch.setenv("ZIPKIN_JAR", str(fake_binary(tmp_path / "zipkin.jar")))
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert str(built) in out and "not built" not in out and jaeger.JAEGER_IMAGE in out


def test_backends_build_uses_what_is_there(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    given = fake_binary(tmp_path / "bin" / "jaeger")
    collector = fake_binary(tmp_path / "bin" / "otelcol")
    monkeypatch.setenv("JAEGER_BIN", str(given))
    monkeypatch.setenv("COLLECTOR_BIN", str(collector))
    monkeypatch.setenv("ZIPKIN_JAR", str(fake_binary(tmp_path / "zipkin.jar")))
    assert main(["backends", "build"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{given}\n{collector}\n") and "already built" in captured.err
    monkeypatch.setenv("JAEGER_BIN", str(tmp_path / "nowhere"))
    assert main(["backends", "build"]) == 1
    assert "JAEGER_BIN" in capsys.readouterr().err


def test_python_dash_m_tracequest_programs_prints_a_path(tmp_path):
    given = fake_binary(tmp_path / "jaeger")
    result = subprocess.run([sys.executable, "-m", "tracequest.programs", "path"], capture_output=True,
                            text=True, env={**os.environ, "JAEGER_BIN": str(given)}, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == str(given)
