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
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tracequest.quests.board import ASCII_MARKS, marks_for, render_board
from tracequest.expect.failure import QuestFailure
from tracequest.quests.progress import Progress
from tracequest.quests.registry import QUESTS, get_quest, select
from tracequest.quests.results import CheckResult, RunResults

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "quest_cases"
PROPERTIES = Path(__file__).resolve().parent / "QUEST_PROPERTIES.md"
# The mystery has no code to edit: its meta-tests are in test_quest_mystery.py. Quest 12
# runs the learner's test against the demo: its meta-tests (and WRONG) are in test_quest_12.py.
TESTED_ELSEWHERE = {"03": "test_quest_mystery.py", "09": "test_quest_09.py", "10": "test_quest_10.py",
                    "11": "test_quest_11.py", "12": "test_quest_12.py"}
QUEST_IDS = [q.id for q in QUESTS if q.id not in TESTED_ELSEWHERE]
# These checks run a collector config in the lab's Collector, exporting to the real Jaeger.
NEEDS_JAEGER = {"06b", "07"}

# What the first failure says on the untouched starter code.
STARTER = {
    "01": ["no span matches", "no span arrived at all", "set_tracer_provider"],
    "02": ["at least 1 of spans of your own", "no span matches", "start_as_current_span"],
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
    "01-provider-not-global": ("01", ["'estimate minutes' (opened in app.py) with a parent among",
                                      "no span matches", "trace.set_tracer_provider()"]),
    "01-wrong-service-name": ("01", ['service.name = "eta-service"', "must be SERVICE_NAME, 'eta'"]),
    "01-no-flask-instrumentation": ("01", ["exactly 1 of SERVER spans 'GET /eta'", "no span matches",
                                           "FlaskInstrumentor().instrument_app(app)"]),
    "01-hardcoded-endpoint": ("01", ["no span arrived at all", "Give the exporter no endpoint"]),
    "02-no-own-span": ("02", ["at least 1 of spans of your own", "no span matches", "start_as_current_span"]),
    "02-not-a-child": ("02", ["to sit inside request spans 'GET /fare'",
                              "is the root of a trace of its own", "pass no context="]),
    "02-span-ends-early": ("02", ["to last at least 225ms", "did not", "inside the `with` block"]),
    "02-generic-name": ("02", ["exactly 0 of spans with a name that does not say what the work is",
                               "'span' (INTERNAL span of fares", "name spans after the operation"]),
    "02-name-with-argument": ("02", ["named the same for every input",
                                     "one input gave 'compute fare 12.0', the other 'compute fare 3.0'",
                                     "keep ids and arguments out of span names"]),
    "02-one-attribute": ("02", ["to carry at least 2 attributes",
                                "'compute fare' has 1 attribute (fare.distance_km)",
                                "fare.surge_multiplier"]),
    "02-distance-hard-coded": ("02", ["GET /fare?km=3 to have attribute fare.distance_km equal to 3",
                                      "fare.distance_km = 12 on 'compute fare'", "not a fixed number"]),
    "02-no-event": ("02", ["to have an event", "has no events", "span.add_event(\"fare priced\""]),
    "04-no-extract": ("04", ["context was lost between frontend → pricing", "ignored it",
                             "extract(self.headers)"]),
    "04-no-inject": ("04", ["context was lost between frontend → pricing", "no traceparent header",
                            "inject(headers)"]),
    "04-hardcoded-traceparent": ("04", ["but its request is in trace", "do not write the header yourself"]),
    "04-inject-outside-client-span": ("04", ["hangs under", "'GET /quote'",
                                             "inside the `with` block of the CLIENT span"]),
    "04-custom-header": ("04", ["not to be in a trace of", "removes the traceparent header",
                                "some other way"]),
    "04-fixed-trace-id": ("04", ["in a trace of its own", "the 3 spans share 1 trace",
                                 "build no SpanContext or traceparent by hand"]),
    "04-no-client-span": ("04", ["exactly 5 of frontend's CLIENT spans", "no span matches",
                                 "the CLIENT span in ask_pricing()"]),
    "04-no-server-span": ("04", ["exactly 5 of pricing's SERVER spans", "no span matches",
                                 "the SERVER span in PriceHandler.do_GET()"]),
    "05-status-only": ("05", ["'exception' event", "record_exception(exc)"]),
    "05-wrong-span": ("05", ["recorded on 'GET /driver'", "inside the `with` block of the Redis span"]),
    "05-ad-hoc-names": ("05", ["semantic-convention names", "redis.command -> db.operation.name"]),
    "05-exception-by-hand": ("05", ["with .exception.type (naming the class RedisTimeout)",
                                    "it with other attributes", "instead of add_event(...)"]),
    "05-no-error-status": ("05", ["to have status ERROR", "'GET' is UNSET",
                                  "span.set_status(Status(StatusCode.ERROR, str(exc)))"]),
    "05-query-text-is-key": ("05", ['db.query.text = "driver:T13"', "not the key alone"]),
    "05-error-type-message": ("05", ["error.type naming the class RedisTimeout",
                                     'error.type = "GET driver:T13 timed out', "not the message",
                                     "type(exc).__qualname__"]),
    "05-key-in-span-name": ("05", ["named the same for every input",
                                   "one input gave 'GET driver:T7', the other 'GET driver:T13'",
                                   "the key belongs in db.query.text"]),
    "05-error-type-on-success": ("05", ["GET /driver?id=T7 not to carry attribute error.type",
                                       "only in the except clause"]),
    "05-exception-on-success": ("05", ["GET /driver?id=T7 not to have an event 'exception'",
                                      "only in the except clause"]),
    "05-error-status-on-success": ("05", ["successful lookup (T7) with status ERROR", "1 span: 'GET'",
                                         "only in the except clause"]),
    "05-redis-span-not-client": ("05", ["exactly 1 of the Redis span of GET /driver?id=T7",
                                       "no span matches", "kind=SpanKind.CLIENT"]),
    "05-no-server-span": ("05", ["exactly 2 of request spans", "no span matches {kind=SERVER}",
                                 "telemetry.py sets those up"]),
    "06-ratio-without-parentbased": ("06a", ["route dropped", "ParentBased"]),
    "06-root-only": ("06a", ["whose root frontend dropped", "ParentBased"]),
    "06-keeps-everything": ("06a", ["400 of 400 requests left a trace", "RATIO (0.25)"]),
    "06-ratio-0.3": ("06a", ["RATIO (0.25)", "ParentBased(root=TraceIdRatioBased(RATIO))"]),
    "06-ratio-0.2": ("06a", ["RATIO (0.25)", "ParentBased(root=TraceIdRatioBased(RATIO))"]),
    "06-route-lower-ratio": ("06a", ["route's SERVER span under each kept request in every trace",
                                     "traces kept by frontend lack route's spans", "ParentBased"]),
    "06-unsampled-parent-by-ratio": ("06a", ["did not sample (traceparent ending in -00)",
                                             "route recorded requests its caller did not sample"]),
    "06b-after-batch": ("06b", ["tail_sampling sits after batch", "in front of batch"]),
    "06b-probabilistic-only": ("06b", ["errors were dropped", "status_code", "status_codes: [ERROR]"]),
    "06b-slow-threshold": ("06b", ["exactly 20 of the 20 traces of 800 ms", "slow traces were dropped",
                                   "threshold_ms: 1000", "make it 500"]),
    "06b-threshold-600": ("06b", ["exactly 20 of the 20 traces of 520 ms, just over the threshold",
                                  "traces just over 500 ms were dropped", "threshold_ms: 600",
                                  "make it 500"]),
    "06b-threshold-400": ("06b", ["at most 10 of the 20 traces of 480 ms, just under the threshold",
                                  "kept as if slow", "threshold_ms: 400", "make it 500"]),
    "06b-no-probabilistic": ("06b", ["ordinary traces (10 ms, no error)", "0 of 1000 ordinary traces",
                                     "add a policy of type probabilistic"]),
    "06b-probabilistic-50": ("06b", ["of 1000 ordinary traces were kept", "keeps 50%",
                                     "make sampling_percentage 10"]),
    "06b-not-in-pipeline": ("06b", ["tail_sampling is defined under processors, but the pipeline does "
                                    "not list it"]),
    "06b-fixed-decision-wait": ("06b", ["a decision_wait the check can shorten", "decision_wait is 30s"]),
    "06b-exports-to-debug": ("06b", ["Jaeger to receive some of the", "it received none of them",
                                     "otlp/jaeger exporter"]),
    "07-attributes-not-in-pipeline": ("07", ["ada@example.com is still there", "does not list it",
                                             "between memory_limiter and batch"]),
    "07-batch-first": ("07", ["batch comes first", "move memory_limiter to the front"]),
    "07-does-not-load": ("07", ["to load in the collector", "the collector refused it",
                                "'timeout' time: unknown unit", "fix what that message names"]),
    "07-no-memory-limiter": ("07", ["memory_limiter first", "there is no memory_limiter",
                                    "define a memory_limiter"]),
    "07-batch-not-last": ("07", ["batch last", "batch is not last", "move batch to the end"]),
    "07-hash-everything": ("07", ["to have attribute account.plan = \"pro\"", "only user.email may change"]),
    "07-wrong-key": ("07", ["spans in Jaeger that hold a raw e-mail address", "is still there",
                            "has no action for key: user.email"]),
    "07-exporter-not-listed": ("07", ["Jaeger holds no spans of accounts",
                                      "otlp/jaeger is defined under exporters"]),
    "08-baggage-not-attached": ("08", ["no customer.id in its baggage header", "context.attach"]),
    "08-no-producer-span": ("08", ["exactly 2 of the 'outbox publish' PRODUCER spans",
                                   "no span matches {kind=PRODUCER}", "with their kinds"]),
    "08-child-not-link": ("08", ["hangs under 'outbox publish'", "became a child of the producer",
                                 "links=[Link(...)]"]),
    "08-baggage-none-recorded": ("08", ["customer.id = \"None\"", "no customer.id in its baggage header", "get_baggage() returned None", "context.attach"]),
    "08-notifier-hard-codes-customer": ("08", ["for customer 517 to have attribute customer.id = '517'", "customer.id = \"392\"", "do not hard-code it"]),
    "08-baggage-not-read": ("08", ["no span matches", "the baggage reached notifier", "no notifier span records it", "baggage.get_baggage(\"customer.id\")"]),
    "08-frontend-hard-codes-customer": ("08", ["customer.id = \"392\"", "frontend sent customer.id=392 in the baggage of customer 517's request"]),
    "08-dispatch-drops-baggage": ("08", ["dispatch received customer.id in its baggage header but did not send it on"]),
    "08-dispatch-loses-context": ("08", ["at least 1 of notifier's spans in the trace of customer 392's request", "dispatch.py and telemetry.py need no changes"]),
    "08-frontend-not-traced": ("08", ["exactly 2 of frontend's request spans", "no span matches"]),
    "08-link-and-child": ("08", ["to be a child of the 'outbox publish' PRODUCER spans", "hangs under 'outbox publish'", "links=[Link(...)], not as context="]),
    "08-child-of-request": ("08", ["to be in a trace of the 'outbox publish' PRODUCER spans", "joined the request's trace"]),
    "08-link-to-request": ("08", ["links to 'GET /notify'", "inside the PRODUCER span's `with` block"]),
    "08-no-link": ("08", ["has no links", "nothing ties the sent message to the request"]),
    "08-no-consumer-kind": ("08", ["exactly 2 of the 'outbox process' CONSUMER spans", "no span matches {kind=CONSUMER}", "with their kinds"]),
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


def overlay_labs(case: str, lab_folder: str, into: Path) -> Path:
    """A labs folder: the reference solution with the case's files laid over it."""
    target = into / lab_folder
    shutil.copytree(ROOT / "solutions" / lab_folder, target)
    for path in (CASES / case).iterdir():
        shutil.copy(path, target / path.name)
    return into


def case_labs(case: str, into: Path) -> Path:
    return overlay_labs(case, get_quest(WRONG[case][0]).lab_folder, into)


def start_runs(quest_ids: list[str], base: Path, pool: ThreadPoolExecutor, wanted: tuple) -> dict:
    """Starter, solution and wrong cases of these quests that the session's tests need, in the pool."""
    quests, cases = wanted
    chosen = [q for q in quest_ids if q in quests]
    runs = {}
    if chosen:
        runs["starter"] = pool.submit(run_checks, ROOT / "labs", base / "starter", chosen)
        runs["solution"] = pool.submit(run_checks, ROOT / "solutions", base / "solution", chosen)
    for case, (quest_id, _) in WRONG.items():
        if quest_id in quest_ids and case in cases:
            labs = case_labs(case, base / case / "labs")
            runs[case] = pool.submit(run_checks, labs, base / case / "home", [quest_id])
    return runs


def wanted_runs(session) -> tuple[set[str], set[str]]:
    """The quests and wrong cases the selected tests ask about (`-k 04` runs only quest 04's)."""
    quests, cases = set(), set()
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "quest_id" in params:
            quests.add(params["quest_id"])
        if "case" in params:
            cases.add(params["case"])
    return quests, cases


@pytest.fixture(scope="session")
def python_outcomes(request, tmp_path_factory):
    """The runs of the quests solved in Python, started at once and awaited where needed."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield start_runs([q for q in QUEST_IDS if q not in NEEDS_JAEGER],
                         tmp_path_factory.mktemp("quest-runs"), pool, wanted_runs(request.session))


@pytest.fixture(scope="session")
def collector_outcomes(request, collector_bin, tmp_path_factory):
    """The runs of the quests solved in a collector config, in the lab's Collector and Jaeger."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield start_runs(sorted(NEEDS_JAEGER), tmp_path_factory.mktemp("collector-quest-runs"), pool,
                         wanted_runs(request.session))


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
    assert own_case_folders() == set(WRONG)


def own_case_folders() -> set[str]:
    """The case folders of the quests this file tests (quest 12 keeps its own)."""
    elsewhere = tuple(f"{quest_id}-" for quest_id in TESTED_ELSEWHERE)
    return {p.name for p in CASES.iterdir() if p.is_dir() and not p.name.startswith(elsewhere)}


def table_cases(path: Path = PROPERTIES) -> dict[str, list[str]]:
    """Case folder -> the properties it proves, from the last column of tests/QUEST_PROPERTIES.md."""
    cases: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("quest", "---"):
            continue
        named = re.findall(r"`([^`]+)`", cells[3])
        assert named, f"a property with no wrong case: {line}"
        for case in named:
            cases.setdefault(case, []).append(f"{cells[0]}: {cells[1]}")
            if case in WRONG:
                assert WRONG[case][0].startswith(cells[0]), f"{case} is listed under quest {cells[0]}"
    return cases


def test_the_properties_table_names_every_case():
    """The table and the case folders cannot drift: each names exactly the other."""
    listed = table_cases()
    every_folder = {p.name for p in CASES.iterdir() if p.is_dir()}
    assert sorted(set(listed) - every_folder) == [], "named in the table, but no such case folder"
    assert sorted(own_case_folders() - set(listed)) == [], "case folders the table does not name"
    twice = {case: rows for case, rows in listed.items() if len(rows) > 1}
    assert twice == {}, "a case proves one property"


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
        select(["13"])


def make_clone(tmp_path: Path, lab: Path) -> Path:
    """A clone of the lab as a learner has it, with this lab folder as labs/01-first-trace."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "checks", clone / "checks")
    shutil.copytree(lab, clone / "labs" / "01-first-trace")
    for folder in ("services", "compose"):   # what marks a clone (tracequest.host.paths)
        (clone / folder).mkdir()
    return clone


def test_check_command_records_progress_for_the_learners_own_labs(tmp_path):
    """`tracequest check 01` in a clone whose labs/ hold a working solution."""
    clone = make_clone(tmp_path, ROOT / "solutions" / "01-first-trace")
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
    clone = make_clone(tmp_path, ROOT / "labs" / "01-first-trace")
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
