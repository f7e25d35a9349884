"""The knob table: one entry per setting, and everything that reads settings agrees with it.

A knob's default must survive being shown and typed back; a misspelt name must
be refused naming the right one; the services' flags, the lab's ports, the
mystery's culprits and the README's tables must all be the table's.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from services.common import config, durations, knobs
from services.common.knobs import (KNOBS, OTHER_TQ_ENV, KnobError, UnknownKnob, as_env,
                                   check_env_names, for_reader, knob)
from services.common.mystery import CULPRITS, Culprit, settings_for
from tracequest.host.ports import Ports, free_port
from tracequest.traces import timefmt
from tracequest.traces.timefmt import format_go_duration, parse_go_duration

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("frontend", "customer", "driver", "route")


# --- the table itself ------------------------------------------------------------------

@pytest.mark.parametrize("k", KNOBS, ids=lambda k: k.name)
def test_every_default_reads_back_from_how_it_is_shown(k):
    assert k.parse(k.show(k.default)) == k.default
    assert k.flag == f"--{k.name}" and k.help and "default" not in k.help.lower()


def test_each_name_and_twin_is_there_once_and_spelled_by_the_rule():
    names, envs = [k.name for k in KNOBS], [k.env for k in KNOBS]
    assert len(set(names)) == len(names) and len(set(envs)) == len(envs)
    for k in KNOBS:
        if k.env.startswith("TQ_"):
            assert k.env == "TQ_" + k.name.upper().replace("-", "_")
        else:  # the client's long-standing names
            assert k.env.startswith("TRACEQUEST_") and k.readers == ("client",)
    assert not set(OTHER_TQ_ENV) & set(envs)


def test_a_malformed_entry_fails_when_the_table_is_built():
    site = ("services/route/eta.py",)
    with pytest.raises(KnobError, match="kind 'duraton' is not one of"):
        knobs.Knob("x-delay", "TQ_X_DELAY", "duraton", 0.1, "x", ("route",), "delay", site)
    with pytest.raises(KnobError, match="readers .* are not among"):
        knobs.Knob("x-delay", "TQ_X_DELAY", "duration", 0.1, "x", ("rout",), "delay", site)
    for bad in ((), "services/route/eta.py", ("eta.py",), ("/work/services/route/eta.py",),
                ("services/route/eta",)):
        with pytest.raises(KnobError, match="read_at .* is not a tuple of module paths"):
            knobs.Knob("x-delay", "TQ_X_DELAY", "duration", 0.1, "x", ("route",), "delay", bad)


def test_ports_are_the_port_knobs():
    port_knobs = {k.name: k.default for k in KNOBS if k.group == "port"}
    assert port_knobs == {f"{f.name.replace('_', '-')}-port": f.default for f in fields(Ports)}
    assert Ports().as_dict()["query"] == knob("query-port").default == 16686
    free = Ports.free()
    assert len(set(free.as_dict().values())) == len(fields(Ports))


def test_the_contract_knobs_are_there():
    assert knob("max-spans").readers == ("backend",) and knob("max-spans").kind == "count"
    assert knob("max-age").kind == "duration" and knob("max-age").parse("0") == 0
    assert knob("seed").default is None and knob("seed").parse("") is None
    assert knob("customer-url").default == f"http://127.0.0.1:{knob('customer-port').default}"
    assert {k.name for k in for_reader("customer")} == {
        "customer-port", "host", "fix-db-query-delay", "fix-disable-db-conn-mutex", "seed"}


# --- where each knob is read ----------------------------------------------------------

def _docstrings(tree) -> set[int]:
    """The ids of the docstring nodes: a knob named only in prose is not read there."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def names_in_code(source: str) -> set[str]:
    """What code (not docstrings, not comments) names: strings, attributes, dataclass fields."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            names.add(node.value)  # knob("max-spans"), config.default("redis-timeout"), an env twin
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)  # settings.fix_db_query_delay
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)  # a Ports field
    return names


def spellings(k) -> set[str]:
    """Every way code names a knob: name, flag, twin, attribute, and a port's other names."""
    names = {k.name, k.flag, k.env, k.dest}
    if k.group == "port":
        names.add(k.name.removesuffix("-port").replace("-", "_"))  # field x_y of Ports
        if k.name.removesuffix("-port") in k.readers:
            names.add("port")  # a service's own port is settings.port (config.py)
    return names


@pytest.mark.parametrize("k", KNOBS, ids=lambda k: k.name)
def test_each_knob_is_read_where_the_table_says(k):
    for site in k.read_at:
        path = ROOT / site
        assert path.is_file(), f"{k.name}: read_at names {site}, which does not exist"
        found = spellings(k) & names_in_code(path.read_text())
        assert found, f"{k.name}: {site} does not name it in its code ({', '.join(sorted(spellings(k)))})"
    # Each service that reads it does so in its own package or in services/common/;
    # the backend, the lab and the client read it in src/tracequest/.
    services_read = set(k.readers) & set(knobs.SERVICES)
    for site in k.read_at:
        if site.startswith("services/"):
            assert site.split("/")[1] in services_read | {"common"}, f"{k.name}: {site} reads none of it"
    for reader in services_read:
        assert any(site.startswith((f"services/{reader}/", "services/common/")) for site in k.read_at), (
            f"{k.name}: the {reader} service reads it, but no read_at module is in services/{reader}/ "
            "or services/common/")
    library_read = set(k.readers) - services_read
    assert any(site.startswith("src/tracequest/") for site in k.read_at) == bool(library_read), (
        f"{k.name}: read by {', '.join(k.readers)}, read_at {k.read_at}")
    assert len(set(k.read_at)) == len(k.read_at)


def test_a_knob_named_only_in_prose_is_not_read_there():
    prose = '"""Latency comes from --fix-db-query-delay."""\n# fix_db_query_delay\nDELAY = 0.3\n'
    assert not spellings(knob("fix-db-query-delay")) & names_in_code(prose)
    code = 'def make(settings):\n    return Database(settings.fix_db_query_delay)\n'
    assert spellings(knob("fix-db-query-delay")) & names_in_code(code) == {"fix_db_query_delay"}
    assert spellings(knob("query-port")) & names_in_code("class Ports:\n    query: int = 1\n")


# --- names ----------------------------------------------------------------------------

def test_a_knob_is_found_by_name_flag_twin_or_attribute():
    k = knob("fix-db-query-delay")
    assert knob("--fix-db-query-delay") is knob("TQ_FIX_DB_QUERY_DELAY") is knob("fix_db_query_delay") is k


@pytest.mark.parametrize("typed, nearest", [
    ("TQ_FIX_DB_QUERY_DELY", "TQ_FIX_DB_QUERY_DELAY"),
    ("fix-db-query-dely", "fix-db-query-delay"),
    ("--max-span", "--max-spans"),
    ("TQ_REDIS_ERROR_RATIO", "TQ_REDIS_ERROR_RATE"),
    ("frontend-prot", "frontend-port"),
])
def test_an_unknown_name_is_refused_naming_the_nearest(typed, nearest):
    with pytest.raises(UnknownKnob) as caught:
        knob(typed)
    assert str(caught.value) == f"unknown setting {typed}; did you mean {nearest}?"
    assert caught.value.nearest == nearest


def test_unknown_tq_variables_are_refused_and_the_others_pass():
    check_env_names([*(k.env for k in KNOBS), *OTHER_TQ_ENV, "PATH", "OTEL_SERVICE_NAME"])
    with pytest.raises(UnknownKnob, match=r"^unknown setting TQ_FIX_DB_QUERY_DELY; "
                                          r"did you mean TQ_FIX_DB_QUERY_DELAY\?$"):
        check_env_names(["PATH", "TQ_FIX_DB_QUERY_DELY", "TQ_SEED"])
    with pytest.raises(UnknownKnob, match="did you mean TQ_TAIL_DECISION_WAIT"):
        check_env_names(["TQ_TAIL_DECISION_WAITS"])
    with pytest.raises(KnobError, match="did you mean 'customer'"):
        for_reader("custmer")


def test_every_tq_variable_the_repository_sets_is_known():
    """Compose files, the lab and the native binaries pass TQ_* names; each must be accepted."""
    used = set()
    for folder in ("compose", "src", "services", "checks", "benchmarks", "solutions", "notebooks"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yaml", ".yml", ".md", ".ipynb", ""):
                used |= set(re.findall(r"\bTQ_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="ignore")))
    used -= {"TQ_FIX_DB_QUERY_DELY"}  # the misspelling the docs show on purpose
    assert used, "the scan found nothing: the folders moved?"
    check_env_names(used)


# --- values ---------------------------------------------------------------------------

def test_there_is_one_go_duration_parser_and_the_library_takes_it_from_the_services():
    assert timefmt.parse_go_duration is durations.parse_go_duration
    assert timefmt.format_go_duration is durations.format_go_duration
    imported = set()
    for path in (ROOT / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {(path, alias.name.split(".")[0]) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add((path, node.module.split(".")[0]))
    assert imported and not {path for path, top in imported if top == "tracequest"}


@pytest.mark.parametrize("text, ns", [
    ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000), ("300ms", 300_000_000),
    ("250us", 250_000), ("250µs", 250_000), ("0", 0), ("1h2m3.5s", 3_723_500_000_000),
    (".5s", 500_000_000), ("7ns", 7), ("2h45m", 9_900_000_000_000), ("1μs", 1_000),
])
def test_go_durations_parse(text, ns):
    assert parse_go_duration(text) == ns
    assert parse_go_duration(format_go_duration(ns)) == ns


@pytest.mark.parametrize("text, message", [
    ("5", "'5' has no unit; write e.g. 5ms or 5s"),
    ("1.5", "'1.5' has no unit"),
    ("", "'' is not a duration"),
    ("1d", "'1d' is not a duration like 300ms, 1.5s or 1m30s"),
    ("-1s", "'-1s' is not a duration"),
    ("1.2.3s", "is not a duration"),
    ("5 ms", "is not a duration"),
])
def test_malformed_durations_are_refused_plainly(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_go_duration(text)


def test_durations_are_shown_as_people_type_them():
    shown = {format_go_duration(ns) for ns in (300_000_000, 90_000_000_000, 86_400_000_000_000, 1_500_000)}
    assert shown == {"300ms", "1m30s", "24h", "1500us"}
    assert knob("fix-db-query-delay").parse("1m30s") == 90.0


@pytest.mark.parametrize("name, text, message", [
    ("fix-disable-db-conn-mutex", "maybe", "'maybe' is not yes or no"),
    ("redis-error-rate", "1.5", "'1.5' is not a rate between 0 and 1"),
    ("redis-error-rate", "x", "'x' is not a rate between 0 and 1"),
    ("frontend-port", "70000", "'70000' is not a port number (0-65535)"),
    ("fix-route-worker-pool-size", "0", "'0' is not a count (a whole number >= 1)"),
    ("customer-url", "customer:8081", "'customer:8081' is not an http:// or https:// URL"),
    ("seed", "twelve", "'twelve' is not an integer seed"),
    ("host", " ", "the host must not be empty"),
])
def test_bad_values_are_refused_in_one_plain_line(name, text, message):
    with pytest.raises(KnobError, match=re.escape(message)):
        knob(name).parse(text)


def test_values_become_environment_twins_through_the_table():
    assert as_env({"fix-db-query-delay": 0.005, "TQ_FIX_DISABLE_DB_CONN_MUTEX": "1",
                   "--max-age": "1.5h", "redis-error-rate": "1/12"}) == {
        "TQ_FIX_DB_QUERY_DELAY": "5ms", "TQ_FIX_DISABLE_DB_CONN_MUTEX": "on",
        "TQ_MAX_AGE": "1h30m", "TQ_REDIS_ERROR_RATE": "1/12"}
    with pytest.raises(KnobError):
        as_env({"fix-db-query-delay": "5"})


# --- the services' command lines --------------------------------------------------------

def test_each_service_has_a_flag_for_each_knob_it_reads():
    for service in SERVICES:
        settings = config.parse_args(service, [], environ={})
        for k in for_reader(service):
            attribute = "port" if k.name == f"{service}-port" else k.dest
            assert getattr(settings, attribute) == k.default, (service, k.name)
        assert settings.mystery is None


def test_command_line_wins_over_environment_over_default():
    environ = {"TQ_FIX_DB_QUERY_DELAY": "1m30s", "TQ_CUSTOMER_PORT": "9001",
               "TQ_FIX_DISABLE_DB_CONN_MUTEX": "yes"}
    settings = config.parse_args("customer", [], environ=environ)
    assert (settings.fix_db_query_delay, settings.port, settings.fix_disable_db_conn_mutex) == (90.0, 9001, True)
    settings = config.parse_args("customer", ["--fix-db-query-delay", "5ms", "--port", "9002",
                                              "--fix-disable-db-conn-mutex", "off"], environ=environ)
    assert (settings.fix_db_query_delay, settings.port, settings.fix_disable_db_conn_mutex) == (0.005, 9002, False)
    assert config.parse_args("customer", ["--customer-port", "9003"], environ={}).port == 9003
    assert config.parse_args("customer", ["--fix-disable-db-conn-mutex"], environ={}).fix_disable_db_conn_mutex


@pytest.mark.parametrize("argv, environ, message", [
    ([], {"TQ_FIX_DB_QUERY_DELY": "5ms"},
     "unknown setting TQ_FIX_DB_QUERY_DELY; did you mean TQ_FIX_DB_QUERY_DELAY?"),
    (["--fix-db-query-dely", "5ms"], {}, "unknown setting --fix-db-query-dely; did you mean --fix-db-query-delay?"),
    (["--fix-db"], {}, "unknown setting --fix-db; did you mean"),  # no silent abbreviations
    (["--fix-db-query-delay", "5"], {}, "argument --fix-db-query-delay: '5' has no unit"),
    ([], {"TQ_FIX_DB_QUERY_DELAY": "1m30"}, "environment variable TQ_FIX_DB_QUERY_DELAY: '1m30' is not a duration"),
    ([], {"TQ_MYSTERY": "twelve"}, "environment variable TQ_MYSTERY: 'twelve' is not an integer seed"),
])
def test_bad_settings_stop_a_service_with_exit_code_2(capsys, argv, environ, message):
    with pytest.raises(SystemExit) as stopped:
        config.parse_args("customer", argv, environ=environ)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return {**env, **extra}


def test_a_service_started_with_a_misspelt_variable_exits_2_naming_the_right_one():
    done = subprocess.run([sys.executable, "-m", "services.customer", "--port", str(free_port())],
                          cwd=ROOT, env=child_env(TQ_FIX_DB_QUERY_DELY="5ms"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "unknown setting TQ_FIX_DB_QUERY_DELY; did you mean TQ_FIX_DB_QUERY_DELAY?" in done.stderr


def test_help_shows_each_default_and_twin():
    done = subprocess.run([sys.executable, "-m", "services.driver", "--help"], cwd=ROOT,
                          env=child_env(COLUMNS="200"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for k in for_reader("driver"):
        assert f"[env {k.env}; default {k.show(k.default) or 'unset'}]" in done.stdout


# --- the mystery ------------------------------------------------------------------------

def test_culprits_name_knobs_their_service_reads():
    for culprit in CULPRITS:
        for name, value in culprit.settings:
            assert culprit.service in knob(name).readers
    with pytest.raises(UnknownKnob, match="did you mean fix-db-query-delay"):
        Culprit("typo", "customer", "SELECT", (("fix-db-query-dely", "800ms"),))
    with pytest.raises(KnobError, match="not read by the driver service"):
        Culprit("wrong service", "driver", "GetDriver", (("payment-delay", "800ms"),))
    with pytest.raises(KnobError, match="has no unit"):
        Culprit("bad value", "route", "compute route", (("route-calc-delay", "150"),))
    assert settings_for(4)["TQ_ROUTE_CALC_DELAY"] == "150ms" and settings_for(4)["TQ_SEED"] == "4"


# --- the README --------------------------------------------------------------------------

def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def _table_rows(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_readme_fix_flag_table_matches_the_knobs():
    rows = _table_rows(_readme_section("The demo's problems, and their fixes"))
    flags = set()
    for problem, fix, env, default in rows:
        flag, *value = fix.strip("`").split()
        k = knob(flag)
        flags.add(k.name)
        assert env == f"`{k.env}`", flag
        assert default == f"`{k.show(k.default)}`", flag
        if value:  # the fix's value must be one the knob accepts, and not the default
            assert k.parse(value[0]) != k.default, flag
    assert flags == {k.name for k in KNOBS if k.group == "fix"}


def test_readme_knob_table_is_the_tables_output():
    section = _readme_section("Knobs")
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    assert table == knobs.markdown_table(), (
        "README's Knobs table drifted from services/common/knobs.py; "
        "paste the output of `python -m services.common.knobs`")
