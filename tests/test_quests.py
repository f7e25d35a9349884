"""The quest checks, checked.

Every check must fail on its untouched starter code (with the hint a learner
needs first), pass on the reference solution, and fail with the right hint on
plausible wrong solutions. A wrong solution lives in tests/quest_cases/<case>/
as only the files that differ from the reference solution.

The checks run as a learner's would: `python -m pytest checks/...` in a
subprocess, reading code from $TRACEQUEST_LABS_DIR. The runs are independent
(free ports, in-test backends), so they start together in a small pool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tracequest.quests.board import ASCII_MARKS, marks_for, render_board
from tracequest.quests.failure import QuestFailure
from tracequest.quests.progress import Progress
from tracequest.quests.registry import QUESTS, get_quest, select
from tracequest.quests.results import CheckResult, RunResults

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "quest_cases"
# The mystery has no code to edit: its meta-tests are in test_quest_mystery.py.
TESTED_ELSEWHERE = {"03": "test_quest_mystery.py"}
QUEST_IDS = [q.id for q in QUESTS if q.id not in TESTED_ELSEWHERE]
# These checks run a collector config in the real binary (the jaeger_bin fixture).
NEEDS_JAEGER = {"06b", "07"}

# What the first failure says on the untouched starter code.
STARTER = {
    "01": ["no spans arrived", "set_tracer_provider"],
    "02": ["a span of your own", "start_as_current_span"],
    "04": ["context was lost between frontend → pricing", "no traceparent header", "inject(headers)"],
    "05": ["'exception' event", "record_exception(exc)"],
    "06a": ["400 of 400 requests", "make_sampler()"],
    "06b": ["all 1000 ordinary traces were kept: nothing is sampling yet",
            "add a tail_sampling processor"],
    "07": ["memory_limiter first", "no processors yet", "define a memory_limiter"],
    "08": ["no customer.id in its baggage header", "context.attach"],
}

# Wrong solutions: case folder -> (quest, words its failure must contain).
WRONG = {
    "01-crashes": ("01", ["exited with code 1", "ModuleNotFoundError", "fix the first error"]),
    "01-no-service-name": ("01", ["unknown_service", "Resource.create"]),
    "01-provider-not-global": ("01", ["has no children", "trace.set_tracer_provider()"]),
    "02-not-a-child": ("02", ["started a trace of its own", "pass no context="]),
    "02-span-ends-early": ("02", ["lasted only", "inside the `with` block"]),
    "04-no-extract": ("04", ["context was lost between frontend → pricing", "ignored it",
                             "extract(self.headers)"]),
    "04-hardcoded-traceparent": ("04", ["but its request is in trace", "do not write the header yourself"]),
    "04-inject-outside-client-span": ("04", ["hangs under", "'GET /quote'",
                                             "inside the `with` block of the CLIENT span"]),
    "04-custom-header": ("04", ["removes the traceparent header", "some other way"]),
    "05-status-only": ("05", ["'exception' event", "record_exception(exc)"]),
    "05-wrong-span": ("05", ["recorded on 'GET /driver'", "inside the `with` block of the Redis span"]),
    "05-ad-hoc-names": ("05", ["semantic-convention names", "redis.command -> db.operation.name"]),
    "06-ratio-without-parentbased": ("06a", ["route dropped", "ParentBased"]),
    "06-root-only": ("06a", ["whose root frontend dropped", "ParentBased"]),
    "06b-after-batch": ("06b", ["tail_sampling sits after batch", "in front of batch"]),
    "06b-probabilistic-only": ("06b", ["errors were dropped", "status_code", "status_codes: [ERROR]"]),
    "06b-slow-threshold": ("06b", ["slow traces were dropped", "threshold_ms: 1000", "make it 500"]),
    "07-attributes-not-in-pipeline": ("07", ["ada@example.com is still there", "does not list it",
                                             "between memory_limiter and batch"]),
    "07-batch-first": ("07", ["batch comes first", "move memory_limiter to the front"]),
    "07-exporter-not-listed": ("07", ["Jaeger holds no spans of accounts",
                                      "otlp/jaeger is defined under exporters"]),
    "08-baggage-not-attached": ("08", ["no customer.id in its baggage header", "context.attach"]),
    "08-child-not-link": ("08", ["became a child of the producer", "links=[Link(...)]"]),
}


def child_env(**extra) -> dict:
    """This environment, with the lab importable from any working directory."""
    env = {k: v for k, v in os.environ.items() if k != "TRACEQUEST_LABS_DIR"}
    paths = [str(ROOT / "src"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in paths)
    return {**env, **extra}


def run_checks(labs: Path, home: Path, quest_ids: list[str], **extra_env) -> RunResults:
    """Run the checks of these quests against a labs folder, as a learner's pytest would."""
    report = home / "results.json"
    home.mkdir(parents=True, exist_ok=True)
    files = sorted({f"checks/{get_quest(q).check_file}" for q in quest_ids})
    env = child_env(TRACEQUEST_LABS_DIR=str(labs), TRACEQUEST_HOME=str(home), **extra_env)
    chosen = [arg for q in quest_ids for arg in ("--quest", q)]   # 06a without 06b's collector
    done = subprocess.run([sys.executable, "-m", "pytest", *files, *chosen, "--quest-report", str(report),
                           "--no-progress", "-q"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert report.exists(), f"no report; pytest said:\n{done.stdout}\n{done.stderr}"
    return RunResults.read(report)


def case_labs(case: str, into: Path) -> Path:
    """A labs folder: the reference solution with the case's files laid over it."""
    quest = get_quest(WRONG[case][0])
    target = into / quest.lab_folder
    shutil.copytree(ROOT / "solutions" / quest.lab_folder, target)
    for path in (CASES / case).iterdir():
        shutil.copy(path, target / path.name)
    return into


def start_runs(quest_ids: list[str], base: Path, pool: ThreadPoolExecutor) -> dict:
    """Starter, solution and every wrong case of these quests, running in the pool."""
    runs = {
        "starter": pool.submit(run_checks, ROOT / "labs", base / "starter", quest_ids),
        "solution": pool.submit(run_checks, ROOT / "solutions", base / "solution", quest_ids),
    }
    for case, (quest_id, _) in WRONG.items():
        if quest_id in quest_ids:
            labs = case_labs(case, base / case / "labs")
            runs[case] = pool.submit(run_checks, labs, base / case / "home", [quest_id])
    return runs


@pytest.fixture(scope="session")
def python_outcomes(tmp_path_factory):
    """The runs of the quests solved in Python, started at once and awaited where needed."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield start_runs([q for q in QUEST_IDS if q not in NEEDS_JAEGER],
                         tmp_path_factory.mktemp("quest-runs"), pool)


@pytest.fixture(scope="session")
def collector_outcomes(jaeger_bin, tmp_path_factory):
    """The runs of the quests solved in a collector config, against the real binary."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield start_runs(sorted(NEEDS_JAEGER), tmp_path_factory.mktemp("collector-quest-runs"), pool)


def outcomes_for(request, quest_id: str) -> dict:
    """Only the quests that need Jaeger wait for (or skip without) its binary."""
    return request.getfixturevalue("collector_outcomes" if quest_id in NEEDS_JAEGER else "python_outcomes")


def failure_text(results: RunResults, quest_id: str) -> str:
    result = results.quests[quest_id]
    assert not result.passed, f"quest {quest_id} passed, but should have failed"
    text = "\n".join(c.message + "\n" + c.hint for c in result.checks if not c.passed)
    return " ".join(text.split())  # messages are wrapped for the terminal


def test_every_quest_has_a_starter_a_solution_and_a_wrong_solution():
    for name in set(TESTED_ELSEWHERE.values()):
        assert (Path(__file__).parent / name).is_file(), name
    for quest in QUESTS:
        if quest.id in TESTED_ELSEWHERE:
            continue
        assert (ROOT / "labs" / quest.lab_folder / "README.md").is_file()
        assert (ROOT / "checks" / quest.check_file).is_file()
        starter = {p.name for p in (ROOT / "labs" / quest.lab_folder).glob("*.py")}
        solution = {p.name for p in (ROOT / "solutions" / quest.lab_folder).glob("*.py")}
        assert starter == solution, quest.id
        assert any(q == quest.id for q, _ in WRONG.values()), f"no wrong solution for {quest.id}"
    for case in WRONG:
        assert (CASES / case).is_dir(), case
    assert {p.name for p in CASES.iterdir() if p.is_dir()} == set(WRONG)


@pytest.mark.parametrize("quest_id", QUEST_IDS)
def test_check_fails_on_the_starter_with_the_first_hint(request, quest_id):
    text = failure_text(outcomes_for(request, quest_id)["starter"].result(), quest_id)
    for words in STARTER[quest_id]:
        assert words in text, f"{words!r} not in:\n{text}"
    assert "Traceback" not in text


@pytest.mark.parametrize("quest_id", QUEST_IDS)
def test_check_passes_on_the_solution(request, quest_id):
    result = outcomes_for(request, quest_id)["solution"].result().quests[quest_id]
    failure = result.first_failure
    assert result.passed, failure and failure.message


@pytest.mark.parametrize("case", sorted(WRONG))
def test_check_fails_on_a_wrong_solution_with_the_right_hint(request, case):
    quest_id, words = WRONG[case]
    text = failure_text(outcomes_for(request, quest_id)[case].result(), quest_id)
    for expected in words:
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert "_pytest" not in text    # the learner's own traceback may show; pytest's never


# --- progress, board, registry ----------------------------------------------

def test_xp_is_awarded_once_per_quest(tmp_path):
    first, second = get_quest("01"), get_quest("02")
    progress = Progress.load(tmp_path)
    xp, badges = progress.record(first, True)
    assert xp == 100 and [b.name for b in badges] == ["First Light"]
    progress.save()

    again = Progress.load(tmp_path)
    assert again.record(first, True) == (0, [])
    assert again.record(first, False, "a later failure") == (0, [])
    assert again.record(second, False, "wrap it in a span") == (0, [])
    again.save()

    stored = json.loads((tmp_path / "progress.json").read_text())
    assert stored["xp"] == 100 and list(stored["completed"]) == ["01"]
    assert stored["badges"] == ["First Light"]
    assert stored["last_hints"]["02"] == "wrap it in a span"


def test_a_badge_needs_every_quest_it_names(tmp_path):
    progress = Progress.load(tmp_path)
    assert progress.record(get_quest("02"), True)[1] == []
    xp, badges = progress.record(get_quest("05"), True)
    assert xp == 150 and [b.name for b in badges] == ["Span Smith"]
    assert progress.xp == 300


def test_board_shows_marks_one_hint_per_failure_xp_and_badges(tmp_path):
    progress = Progress.load(tmp_path)
    progress.record(get_quest("01"), True)
    progress.record(get_quest("05"), True)
    results = RunResults(progress_saved=True, xp_earned=100, badges_earned=["First Light"])
    results.add(CheckResult("01", "t::a", "a", True))
    results.add(CheckResult("02", "t::b", "b", False, "Expected: ...", "wrap compute_fare() in a span"))
    results.add(CheckResult("02", "t::c", "c", False, "Expected: ...", "a second hint"))
    board = render_board(results, progress)
    lines = board.splitlines()
    assert any(line.startswith("  ✓ 01") for line in lines)
    assert any(line.startswith("  ✗ 02") for line in lines)
    assert any(line.startswith("  · 04") for line in lines)
    assert any(line.startswith("  ✓ 05") and "(earlier)" in line for line in lines)
    assert "hint: wrap compute_fare() in a span" in board
    assert "a second hint" not in board
    assert f"XP 250 / {sum(q.xp for q in QUESTS)}" in board
    assert "First Light" in board and "+100 XP this run." in board


def test_board_says_when_progress_was_not_saved(tmp_path):
    results = RunResults(progress_saved=False)
    results.add(CheckResult("01", "t::a", "a", True))
    assert "progress was not saved" in render_board(results, Progress.load(tmp_path))


def test_board_falls_back_to_ascii_marks():
    class Latin1:
        encoding = "latin-1"

    assert marks_for(Latin1()) == ASCII_MARKS


def test_failure_reads_expected_found_hint():
    text = QuestFailure("a SERVER span", "only INTERNAL spans", "instrument Flask").render()
    assert text.splitlines() == ["Expected: a SERVER span", "Found:    only INTERNAL spans",
                                 "Hint:     instrument Flask"]


def test_quest_ids_as_a_learner_types_them():
    assert [q.id for q in select(["1"])] == ["01"]
    assert [q.id for q in select(["06"])] == ["06a", "06b"]     # a bare number: every part
    assert [q.id for q in select(["6a"])] == ["06a"]
    assert [q.id for q in select(["propagation"])] == ["04"]
    with pytest.raises(KeyError):
        select(["09"])


def test_check_command_records_progress_for_the_learners_own_labs(tmp_path):
    """`tracequest check 01` in a clone whose labs/ hold a working solution."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "checks", clone / "checks")
    shutil.copytree(ROOT / "solutions" / "01-first-trace", clone / "labs" / "01-first-trace")
    env = child_env(TRACEQUEST_HOME=str(tmp_path / "home"))

    def tracequest(*args):
        return subprocess.run([sys.executable, "-m", "tracequest.cli", *args], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=120)

    first = tracequest("check", "01")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "✓ 01" in first.stdout and "+100 XP this run." in first.stdout
    assert "New badge: First Light" in first.stdout
    assert "Traceback" not in first.stdout + first.stderr

    second = tracequest("check", "1")
    assert second.returncode == 0 and "XP 100 / " in second.stdout
    assert "+100 XP" not in second.stdout
    progress = json.loads((tmp_path / "home" / "progress.json").read_text())
    assert progress["xp"] == 100 and progress["badges"] == ["First Light"]

    listing = tracequest("quests")
    assert "✓ 01" in listing.stdout and "· 02" in listing.stdout
    hint = tracequest("hint", "2")
    assert "No check has run yet" in hint.stdout


def test_check_command_shows_no_traceback_on_failure(tmp_path):
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "checks", clone / "checks")
    shutil.copytree(ROOT / "labs" / "01-first-trace", clone / "labs" / "01-first-trace")
    env = child_env(TRACEQUEST_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "tracequest.cli", "check", "01"], cwd=clone,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "✗ 01" in done.stdout and "Expected:" in done.stdout and "hint:" in done.stdout
    for noise in ("Traceback", "def test_", "AssertionError", "=== FAILURES"):
        assert noise not in done.stdout + done.stderr
    hint = subprocess.run([sys.executable, "-m", "tracequest.cli", "hint", "01"], cwd=clone,
                          env=env, capture_output=True, text=True, timeout=60)
    assert "Hint from your last check" in hint.stdout and "set_tracer_provider" in hint.stdout
