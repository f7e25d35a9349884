"""Quest 10, three broken services, checked: starter, solution, and each wrong fix.

The check runs as a learner's would (`pytest checks/test_10_broken_services.py`
in a subprocess, reading code from $TRACEQUEST_LABS_DIR); a wrong fix is a
folder in tests/quest_cases/10-*/ holding only the files that differ from the
reference solution.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_quests import failure_text, overlay_labs, run_checks

from tracequest.quests.results import RunResults

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "quest_cases"
FOLDER = "10-broken-services"

STARTER = ["exactly 6 of shop's calls to prices", "no span matches", "RequestsInstrumentor().instrument()"]
# Wrong fixes: case folder -> words the check's failure must contain.
WRONG = {
    "10-no-requests-instrumentation": ["exactly 6 of shop's calls to prices", "no span matches",
                                       "requests is not instrumented"],
    "10-inject-by-hand": ["exactly 6 of shop's calls to prices", "RequestsInstrumentor().instrument()"],
    "10-fixed-parent": ["to be a child of shop's GET /basket spans", "hang under one fixed span",
                        "build no parent by hand"],
    "10-serial-calls": ["to run at the same time", "ran one after another", "Keep the thread pool"],
    "10-prices-exports-http": ["exactly 6 of prices' GET /price spans", "no span matches",
                               "sends OTLP over HTTP to the endpoint of OTLP/gRPC"],
    "10-hard-coded-endpoint": ["exactly 6 of prices' GET /price spans", "write no endpoint into the code"],
}


def run_check(labs: Path, home: Path) -> RunResults:
    return run_checks(labs, home, ["10"])


def case_labs(case: str, into: Path) -> Path:
    return overlay_labs(case, FOLDER, into)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Starter, solution and every wrong fix, run two at a time."""
    base = tmp_path_factory.mktemp("quest-10")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {"starter": pool.submit(run_check, ROOT / "labs", base / "starter"),
                "solution": pool.submit(run_check, ROOT / "solutions", base / "solution")}
        for case in WRONG:
            runs[case] = pool.submit(run_check, case_labs(case, base / case / "labs"), base / case / "home")
        yield {name: future.result() for name, future in runs.items()}


def test_every_wrong_fix_has_a_folder_and_the_same_files():
    folders = {p.name for p in CASES.iterdir() if p.name.startswith("10-")}
    assert folders == set(WRONG)
    solution = {p.name for p in (ROOT / "solutions" / FOLDER).glob("*.py")}
    assert {p.name for p in (ROOT / "labs" / FOLDER).glob("*.py")} == solution
    for case in WRONG:
        assert {p.name for p in (CASES / case).iterdir()} <= solution, case


def test_check_fails_on_the_starter_with_the_first_hint(outcomes):
    text = failure_text(outcomes["starter"], "10")
    for words in STARTER:
        assert words in text, f"{words!r} not in:\n{text}"
    assert "Traceback" not in text


def test_check_passes_on_the_solution(outcomes):
    result = outcomes["solution"].quests["10"]
    assert result.passed, result.first_failure and result.first_failure.message


@pytest.mark.parametrize("case", sorted(WRONG))
def test_check_fails_on_a_wrong_fix_with_its_hint(outcomes, case):
    text = failure_text(outcomes[case], "10")
    for words in WRONG[case]:
        assert words in text, f"{case}: {words!r} not in:\n{text}"
    assert "Traceback" not in text
