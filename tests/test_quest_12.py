"""Quest 12, your own trace test, checked.

The check judges a learner's tests by running them against the demo, healthy
and broken, so two things must hold. The variants must show what they promise:
each healthy one keeps every property, each regression breaks exactly its own
(that guards the regression knobs themselves). And the check must pass the
reference tests, and give each kind of wrong test the verdict that fits it:
vacuous, over-strict, tied to one fix flag, guarding nothing the regressions
break, claiming the wrong regression, crashing.

The slow part is running the demo once per variant; that happens once, and
every check run below reads those traces ($TRACEQUEST_VARIANT_TRACES).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_quests import failure_text

from services.common.knobs import knob
from tracequest.traces.client import QueryClient
from tracequest.lab.load import run_load
from tracequest.quests.regressions import CACHE_ENV, HEALTHY, REGRESSIONS, REQUESTS, VARIANTS, broken_promises, load_traces, record_all
from tracequest.quests.results import RunResults

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "quest_cases"
FOLDER = "12-trace-test"

STARTER = ["passed on every run of the demo, healthy or broken, and even with no traces at all",
           "a selection that matches no span", "fail with regression double-customer-call on",
           "yet every test that passes on the healthy demo passed"]
# Wrong tests: case folder -> words the check's failure must contain.
WRONG = {
    "12-vacuous": ["test_a_dispatch_makes_at_most_one_customer_query",
                   "even with no traces at all: it checks nothing",
                   "a selection that matches no span passes expect_count(at_most=...)"],
    "12-over-strict": ["failed on every run of the demo, healthy or broken",
                       "stricter than the property", "count per trace"],
    "12-fix-dependent": ["passed on the demo with its defaults but failed on the demo with every fix on",
                         "fix_flags[\"fix-route-worker-pool-size\"]"],
    "12-guards-nothing": ["test_every_driver_error_records_its_exception",
                          "it guards nothing the regressions break",
                          "every driver span with status ERROR has an 'exception' event"],
    "12-wrong-claim": ["it passed with unbounded-route-calls on; it failed on double-customer-call instead",
                       "name that one in its marker"],
    "12-crashes": ["stopped with an error: KeyError: 'route-worker-pool-size'",
                   "test_dispatch_traces.py, line", "fix the error it names"],
}


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEQUEST_LABS_DIR", CACHE_ENV)}
    paths = [str(ROOT / "src"), str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return {**env, **extra}


def flat(text: str) -> str:
    return " ".join(text.split())  # messages are wrapped for the terminal


@pytest.fixture(scope="session")
def variant_files(tmp_path_factory) -> dict[str, Path]:
    """Every variant's traces, recorded once (each is checked against its promises as it is)."""
    return record_all(tmp_path_factory.mktemp("variants"))


def run_check(labs: Path, home: Path, traces: Path) -> RunResults:
    """`pytest checks/test_12_trace_test.py` as a learner's run would, on a labs folder."""
    report = home / "results.json"
    home.mkdir(parents=True, exist_ok=True)
    env = child_env(TRACEQUEST_LABS_DIR=str(labs), TRACEQUEST_HOME=str(home), **{CACHE_ENV: str(traces)})
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/test_12_trace_test.py",
                           "-c", "checks/pytest.ini", "--rootdir", "checks", "--no-progress",
                           "--quest-report", str(report), "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert report.exists(), f"no report; pytest said:\n{done.stdout}\n{done.stderr}"
    return RunResults.read(report)


def case_labs(case: str, into: Path) -> Path:
    """A labs folder: the reference solution with the case's files laid over it."""
    target = into / FOLDER
    shutil.copytree(ROOT / "solutions" / FOLDER, target)
    for path in (CASES / case).iterdir():
        shutil.copy(path, target / path.name)
    return into


@pytest.fixture(scope="session")
def outcomes(variant_files, tmp_path_factory) -> dict:
    """The check run on the starter, the solution and every wrong case, a few at a time."""
    base = tmp_path_factory.mktemp("quest-12-runs")
    traces = next(iter(variant_files.values())).parent
    labs = {"starter": ROOT / "labs", "solution": ROOT / "solutions",
            **{case: case_labs(case, base / case / "labs") for case in WRONG}}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run_check, folder, base / name / "home", traces)
                   for name, folder in labs.items()}
        yield {name: future.result() for name, future in futures.items()}


# --- the regressions and the variants ----------------------------------------------

def test_regressions_are_knobs_that_default_to_a_healthy_demo():
    for regression in REGRESSIONS:
        (name, value), = regression.settings
        k = knob(name)
        assert k.group == "failure" and k.default is False and k.parse(value) is True
        assert name == f"regression-{regression.name}"
    assert {v.name for v in VARIANTS} == {v.name for v in HEALTHY} | {r.name for r in REGRESSIONS}


@pytest.mark.parametrize("name", [v.name for v in VARIANTS])
def test_each_variant_shows_exactly_what_it_promises(variant_files, name):
    """Healthy: every property holds. A regression: its own property breaks, and only that one."""
    v = next(v for v in VARIANTS if v.name == name)
    traces = load_traces(variant_files[name])
    assert len(traces) == REQUESTS and all(t.root.name == "GET /dispatch" for t in traces)
    assert broken_promises(v, traces) == []


def test_the_healthy_demo_has_driver_errors_for_the_tests_to_look_at(variant_files):
    """Without a failed Redis read, no test could tell error-without-exception from health."""
    for v in HEALTHY:
        errors = [s for t in load_traces(variant_files[v.name]) for s in t if s.service == "driver"
                  and s.status == "ERROR"]
        assert errors and all(s.event("exception") for s in errors), v.name


# --- the check on the starter, the solution and wrong tests ---------------------------------

def test_check_fails_on_the_starter_with_the_first_hint(outcomes):
    text = failure_text(outcomes["starter"], "12")
    for words in STARTER:
        assert words in text, f"{words!r} not in:\n{text}"
    first = outcomes["starter"].quests["12"].first_failure
    assert "it checks nothing" in flat(first.message) and "Traceback" not in text


def test_check_passes_on_the_solution(outcomes):
    result = outcomes["solution"].quests["12"]
    failure = result.first_failure
    assert result.passed and len(result.checks) == 3, failure and failure.message


@pytest.mark.parametrize("case", sorted(WRONG))
def test_check_fails_on_a_wrong_test_with_the_right_verdict(outcomes, case):
    text = failure_text(outcomes[case], "12")
    for words in WRONG[case]:
        assert words in text, f"{words!r} not in:\n{text}"
    assert "_pytest" not in text


def test_every_case_folder_is_listed():
    assert {p.name for p in CASES.iterdir() if p.name.startswith("12-")} == set(WRONG)


# --- the fixtures at home -----------------------------------------------------------

def run_at_home(home: Path, folder: str = "solutions") -> subprocess.CompletedProcess:
    """`pytest <folder>/12-trace-test` as a learner types it, against the lab in `home`."""
    return subprocess.run([sys.executable, "-m", "pytest", f"{folder}/{FOLDER}", "-q",
                           "-p", "no:cacheprovider"], cwd=ROOT,
                          env=child_env(TRACEQUEST_HOME=str(home)), capture_output=True,
                          text=True, timeout=120)


def test_at_home_the_tests_read_the_running_lab(lab):
    sent = run_load(lab.frontend_url, 20, 4, progress=None)
    assert not sent.errors and len(sent.trace_ids) == 20
    for trace_id in sent.trace_ids:  # whole traces, as a learner's would be by the time they test
        QueryClient(lab.query_url).wait_for_trace(trace_id, min_spans=40, settle=0.2)
    done = run_at_home(lab.home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert load_traces(lab.home / "quest-12-traces.json")


def test_at_home_without_a_lab_the_tests_say_how_to_start_one(tmp_path):
    done = run_at_home(tmp_path / "no-lab", "labs")
    assert done.returncode == 1
    assert "no lab is running: start it with `tracequest up`" in done.stdout
