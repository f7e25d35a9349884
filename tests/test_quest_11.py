"""Quest 11, trace an agent loop, checked.

The check must fail on the untouched starter (asking for the iteration spans
first), pass on the reference solution, and give each plausible wrong
solution the hint that fits it: tokens summed on the wrong span, tools as
siblings of their iteration, old GenAI attribute names, the cost recorded once
per request, a refused call that does not show. Each wrong solution lives in
tests/quest_cases/11-<what breaks>/ as the files that differ from the solution.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_quests import overlay_labs, run_checks

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "quest_cases"
FOLDER = "11-agent-loop"

STARTER = ["exactly 4 of 'agent iteration' spans under the request", "no span matches",
           "start_as_current_span(\"agent iteration\")"]
WRONG = {
    "11-tokens-on-request": ["to have attribute gen_ai.usage.input_tokens",
                             "the token counts are on 'GET /ask', not on the model calls"],
    "11-tools-as-siblings": ["execute_tool spans of 'why is my driver late?' to be a child of",
                             "hangs under 'GET /ask'", "inside the `with` block of its iteration"],
    "11-old-attribute-names": ["no attribute gen_ai.provider.name", "old GenAI attribute names",
                               "gen_ai.system -> gen_ai.provider.name",
                               "gen_ai.usage.prompt_tokens -> gen_ai.usage.input_tokens"],
    "11-cost-per-request": ["no attribute llm.cost.usd", "the cost is recorded once, on 'GET /ask'",
                            "price each call on its own span"],
    "11-refusal-not-recorded": ["exactly 4 of answered model-call spans", "Found: 5 spans",
                                "a refused call must show",
                                "set span.set_status(Status(StatusCode.ERROR"],
}


def run_check(labs: Path, home: Path) -> str:
    """`pytest checks/test_11_agent_loop.py` as a learner's would run; '' if it passed, else its message."""
    quest = run_checks(labs, home, ["11"]).quests["11"]
    return "" if quest.passed else " ".join(quest.checks[0].message.split())


def case_labs(case: str, into: Path) -> Path:
    return overlay_labs(case, FOLDER, into)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    base = tmp_path_factory.mktemp("quest-11")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {"starter": pool.submit(run_check, ROOT / "labs", base / "starter"),
                "solution": pool.submit(run_check, ROOT / "solutions", base / "solution")}
        for case in WRONG:
            runs[case] = pool.submit(run_check, case_labs(case, base / case / "labs"), base / case / "home")
        yield runs


def test_every_wrong_case_is_on_disk_and_listed():
    on_disk = {p.name for p in CASES.iterdir() if p.name.startswith("11-")}
    assert on_disk == set(WRONG)


def test_the_solution_passes(outcomes):
    assert outcomes["solution"].result() == ""


def test_the_starter_fails_asking_for_iterations_first(outcomes):
    text = outcomes["starter"].result()
    for words in STARTER:
        assert words in text, text


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_wrong_solution_fails_with_its_hint(outcomes, case):
    text = outcomes[case].result()
    assert text, f"{case} passed the check"
    for words in WRONG[case]:
        assert words in text, text
