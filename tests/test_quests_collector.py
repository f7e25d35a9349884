"""The collector quests' checks (06b, 07), checked against the real collector and Jaeger.

Same promise as tests/test_quests.py: each check fails on its untouched
starter with the hint a learner needs first, passes on the reference
solution, and fails with the right hint on plausible wrong solutions (in
tests/quest_cases/06b-*/ and 07-*/, only the files that differ from the
solution). These checks run the real Jaeger binary, so every run here needs
the ``jaeger_bin`` fixture: it fails on CI when the binary is missing and
skips elsewhere. The runs start together in a small pool; each picks its own
free ports.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_quests import child_env, failure_text

from tracequest.quests.collector import (CollectorConfig, compact_log_line, kind_of,
                                         validation_error)
from tracequest.quests.registry import get_quest, select
from tracequest.quests.results import RunResults

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "quest_cases"
QUEST_IDS = ["06b", "07"]

# What the first failure says on the untouched starter.
STARTER = {
    "06b": ["all 1000 ordinary traces were kept: nothing is sampling yet",
            "add a tail_sampling processor"],
    "07": ["memory_limiter first", "no processors yet", "define a memory_limiter"],
}

# Wrong solutions: case folder -> (quest, words its failure must contain).
WRONG = {
    "06b-after-batch": ("06b", ["tail_sampling sits after batch", "in front of batch"]),
    "06b-probabilistic-only": ("06b", ["errors were dropped", "status_code", "status_codes: [ERROR]"]),
    "06b-slow-threshold": ("06b", ["slow traces were dropped", "threshold_ms: 1000", "make it 500"]),
    "07-attributes-not-in-pipeline": ("07", ["ada@example.com is still there", "does not list it",
                                             "between memory_limiter and batch"]),
    "07-batch-first": ("07", ["batch comes first", "move memory_limiter to the front"]),
    "07-exporter-not-listed": ("07", ["Jaeger holds no spans of accounts",
                                      "otlp/jaeger is defined under exporters"]),
}


def run_checks(labs: Path, home: Path, quest_ids: list[str], **env) -> RunResults:
    """These quests' checks against a labs folder, as `tracequest check 06b 07` would pick them."""
    report = home / "results.json"
    home.mkdir(parents=True, exist_ok=True)
    files = sorted({f"checks/{get_quest(q).check_file}" for q in quest_ids})
    chosen = [arg for q in quest_ids for arg in ("--quest", q)]
    done = subprocess.run([sys.executable, "-m", "pytest", *files, *chosen, "--quest-report", str(report),
                           "--no-progress", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env=child_env(TRACEQUEST_LABS_DIR=str(labs), TRACEQUEST_HOME=str(home), **env))
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


@pytest.fixture(scope="module")
def outcomes(jaeger_bin, tmp_path_factory):
    """Every run this module asserts on, started at once and awaited where needed."""
    base = tmp_path_factory.mktemp("collector-quest-runs")
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {
            "starter": pool.submit(run_checks, ROOT / "labs", base / "starter", QUEST_IDS),
            "solution": pool.submit(run_checks, ROOT / "solutions", base / "solution", QUEST_IDS),
        }
        for case, (quest_id, _) in WRONG.items():
            labs = case_labs(case, base / case / "labs")
            runs[case] = pool.submit(run_checks, labs, base / case / "home", [quest_id])
        yield runs


# --- no binary needed ---------------------------------------------------------

def test_collector_quests_have_a_starter_a_solution_and_wrong_solutions():
    for quest_id in QUEST_IDS:
        quest = get_quest(quest_id)
        lab, solution = ROOT / "labs" / quest.lab_folder, ROOT / "solutions" / quest.lab_folder
        assert (lab / "collector.yaml").is_file() and (solution / "collector.yaml").is_file()
        assert "make backends" in (lab / "README.md").read_text()
        assert {p.name for p in lab.glob("*.py")} == {p.name for p in solution.glob("*.py")}
        assert (ROOT / "checks" / quest.check_file).is_file()
        assert any(q == quest_id for q, _ in WRONG.values()), f"no wrong solution for {quest_id}"
    ours = {p.name for p in CASES.iterdir() if p.is_dir() and p.name.startswith(("06b-", "07-"))}
    assert ours == set(WRONG)


def test_the_given_service_is_the_same_in_the_lab_and_the_solution():
    for name in ("app.py", "telemetry.py"):
        assert (ROOT / "labs/07-collector" / name).read_text() == \
            (ROOT / "solutions/07-collector" / name).read_text()


def test_check_06_picks_both_parts():
    assert [q.id for q in select(["06"])] == ["06a", "06b"]
    assert [q.id for q in select(["6b"])] == ["06b"]
    assert get_quest("06b").check_file == get_quest("06a").check_file == "test_06_sampling.py"
    assert get_quest("07").check_file == "test_07_collector.py"


def test_without_the_binary_the_checks_say_how_to_build_it(tmp_path):
    results = run_checks(ROOT / "solutions", tmp_path / "home", QUEST_IDS,
                         JAEGER_BIN=str(tmp_path / "no-such-jaeger"))
    for quest_id in QUEST_IDS:
        text = failure_text(results, quest_id)
        assert "the real Jaeger binary" in text and "make backends" in text, text
        assert "Traceback" not in text


def test_reading_a_collector_config(tmp_path):
    path = tmp_path / "collector.yaml"
    path.write_text((ROOT / "solutions/07-collector/collector.yaml").read_text())
    config = CollectorConfig.read(path)
    (pipeline,) = config.trace_pipelines()
    assert pipeline.processors == ["memory_limiter", "attributes/pii", "batch"]
    assert pipeline.processors_of_kind("attributes") == ["attributes/pii"]
    assert list(config.defined("exporters", "otlp")) == ["otlp/jaeger"]
    assert kind_of("otlp/jaeger") == "otlp"
    endpoint = config.section("exporters")["otlp/jaeger"]["endpoint"]
    assert config.resolve(endpoint, {}) == "127.0.0.1:4327"
    assert config.resolve(endpoint, {"TQ_JAEGER_OTLP_ENDPOINT": "127.0.0.1:9"}) == "127.0.0.1:9"


def test_the_collectors_words_come_back_in_one_line():
    output = ("2026/01/02 03:04:05 application version: git-version=v2.13.0\n"
              "Error: failed to get config: cannot unmarshal the configuration: decoding failed "
              "due to the following error(s):\n\n'processors' error reading configuration for "
              "\"batch\": decoding failed due to the following error(s):\n\n'timeout' invalid "
              "duration\n2026/01/02 03:04:05 failed to get config: ...\n")
    assert validation_error(output) == ("failed to get config: cannot unmarshal the configuration: "
                                        "'processors' error reading configuration for \"batch\": "
                                        "'timeout' invalid duration")
    line = ('2026-01-02T03:04:05.678Z\tinfo\tTraces\t{"resource": {"service.name": "jaeger"}, '
            '"otelcol.component.id": "debug", "otelcol.component.kind": "exporter", "spans": 2}')
    assert compact_log_line(line) == "03:04:05 info debug: Traces (spans=2)"


# --- the real collector and Jaeger ----------------------------------------------

@pytest.mark.parametrize("quest_id", QUEST_IDS)
def test_check_fails_on_the_starter_with_the_first_hint(outcomes, quest_id):
    text = failure_text(outcomes["starter"].result(), quest_id)
    for words in STARTER[quest_id]:
        assert words in text, f"{words!r} not in:\n{text}"
    assert "Traceback" not in text


@pytest.mark.parametrize("quest_id", QUEST_IDS)
def test_check_passes_on_the_solution(outcomes, quest_id):
    result = outcomes["solution"].result().quests[quest_id]
    failure = result.first_failure
    assert result.passed, failure and failure.message


@pytest.mark.parametrize("case", sorted(WRONG))
def test_check_fails_on_a_wrong_solution_with_the_right_hint(outcomes, case):
    quest_id, words = WRONG[case]
    text = failure_text(outcomes[case].result(), quest_id)
    for expected in words:
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert "Traceback" not in text
