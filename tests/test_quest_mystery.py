"""Quest 03, the mystery, checked: the slow span, and the assistant's trouble.

The mystery must be a fair puzzle: every culprit reachable, one seed one
culprit, the normal demo unchanged without it, and the files on disk never
naming the culprit. Each culprit must really hold the most self time when the
demo runs with it (that guards the injected problems themselves), each
assistant culprit must show in the assistant's traces as the check reads them,
and the check must pass the right answers and give each kind of wrong answer
the hint that fits it.

The slow part is running the demo once per culprit; those runs, and two full
`tracequest check 03` runs, start together in a small pool. Two of the runs
also ask the assistant, one per assistant culprit, picked where the dispatch
culprit stays out of the assistant's way (the route and the payment provider).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from services.common import config
from services.common.mystery import (ASSISTANT_CULPRITS, CULPRITS, QUIET, assistant_culprit_for, culprit_for,
                                     settings_for)
from test_quests import child_env
from tracequest.lab import Lab, LabSettings
from tracequest.host.ports import Ports
from tracequest.quests import mystery_assistant
from tracequest.expect.failure import QuestFailure
from tracequest.quests.mystery import draw_seed
from tracequest.quests.mystery_run import QUESTIONS, run_mystery
from tracequest.quests.slow_span import judge, slowest_operation, slowest_overall

ROOT = Path(__file__).resolve().parent.parent
SEEDS = {culprit.kind: index for index, culprit in enumerate(CULPRITS)}
SERVICES = ("frontend", "customer", "driver", "route")
# One run per assistant culprit, on seeds whose dispatch culprit the assistant's tools do not meet.
ASSISTANT_SEEDS = {assistant_culprit_for(SEEDS[kind]).kind: SEEDS[kind]
                   for kind in ("slow route computation", "slow payment provider")}
SLOW_MODEL, LOOP = ASSISTANT_CULPRITS


def tracequest(home: Path, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracequest.cli", *args], cwd=ROOT,
                          env=child_env(TRACEQUEST_HOME=str(home)), capture_output=True,
                          text=True, timeout=timeout)


def flat(text: str) -> str:
    return " ".join(text.split())  # messages are wrapped for the terminal


# --- the seed -> culprit mapping ---------------------------------------------------

def test_there_are_six_culprits_each_in_its_own_operation():
    answers = {c.answer for c in CULPRITS}
    assert len(CULPRITS) >= 6 and len(answers) == len(CULPRITS)
    assert {service for service, _ in answers} == set(SERVICES)


def test_every_culprit_is_reachable_and_neighbouring_seeds_differ():
    assert {culprit_for(seed) for seed in range(len(CULPRITS))} == set(CULPRITS)
    for seed in range(-50, 500):
        assert culprit_for(seed) == culprit_for(seed)
        assert culprit_for(seed) != culprit_for(seed + 1), seed


def test_a_new_mystery_has_another_culprit_than_the_last():
    for previous in range(20):
        seed = draw_seed(previous, random.Random(previous))
        assert culprit_for(seed) != culprit_for(previous)


def test_without_a_mystery_the_demo_keeps_its_defaults(monkeypatch):
    for name in [n for n in os.environ if n.startswith("TQ_")]:
        monkeypatch.delenv(name)
    frontend, customer = config.parse_args("frontend", []), config.parse_args("customer", [])
    driver, route = config.parse_args("driver", []), config.parse_args("route", [])
    assert frontend.mystery is None and frontend.seed is None
    assert frontend.fix_route_worker_pool_size == 3 and frontend.payment_delay == 0.005
    assert customer.fix_db_query_delay == 0.300 and customer.fix_disable_db_conn_mutex is False
    assert (driver.redis_error_rate, driver.redis_find_delay, driver.redis_timeout) == (1 / 12, 0.020, 0.030)
    assert route.route_calc_delay == 0.050


def test_a_mystery_quiets_the_demo_except_its_culprit(monkeypatch):
    monkeypatch.setenv("TQ_FIX_DB_QUERY_DELAY", "900ms")  # a stray setting in the shell
    monkeypatch.setenv("TQ_MYSTERY", str(SEEDS["slow route computation"]))
    customer = config.parse_args("customer", [])
    assert customer.fix_db_query_delay == pytest.approx(0.005)  # the mystery wins over the shell
    assert customer.fix_disable_db_conn_mutex is True
    assert config.parse_args("route", []).route_calc_delay == pytest.approx(0.150)
    assert config.parse_args("route", ["--route-calc-delay", "7ms"]).route_calc_delay == pytest.approx(0.007)
    assert config.parse_args("frontend", []).mystery == SEEDS["slow route computation"]
    lock = settings_for(SEEDS["lock contention"])
    assert lock["TQ_FIX_DISABLE_DB_CONN_MUTEX"] == "0" and QUIET["TQ_FIX_DISABLE_DB_CONN_MUTEX"] == "1"


def test_a_bad_mystery_seed_stops_a_service_with_a_clear_message():
    done = subprocess.run([sys.executable, "-m", "services.route", "--help"], cwd=ROOT,
                          env=child_env(TQ_MYSTERY="twelve"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "TQ_MYSTERY" in done.stderr and "'twelve' is not an integer seed" in done.stderr


# --- the commands and their files ---------------------------------------------------

def test_the_files_hold_the_seed_and_the_answer_but_never_the_culprit(tmp_path):
    for culprit in CULPRITS:
        home = tmp_path / culprit.kind.replace(" ", "-")
        drawn = tracequest(home, "mystery", "new", "--seed", str(SEEDS[culprit.kind]), "--no-start")
        assert drawn.returncode == 0, drawn.stderr
        assert culprit.operation not in drawn.stdout
        wrong = ("route", "GET /route") if culprit.service != "route" else ("frontend", "find best ETA")
        answered = tracequest(home, "answer", "slow-span", wrong[0], *wrong[1].split())
        assert answered.returncode == 0, answered.stderr
        helper = assistant_culprit_for(SEEDS[culprit.kind])
        assert helper.kind not in drawn.stdout and helper.operation not in drawn.stdout
        if SEEDS[culprit.kind] < len(ASSISTANT_CULPRITS):  # each assistant culprit once is enough
            assert tracequest(home, "answer", "assistant", "assistant", "GET").returncode == 0
        mystery = json.loads((home / "mystery.json").read_text())
        assert mystery == {"seed": SEEDS[culprit.kind]}
        stored = (home / "answers.json").read_text()
        assert json.loads(stored)["slow-span"]["operation"] == wrong[1]
        for secret in (culprit.operation, culprit.service, culprit.kind, helper.operation, helper.kind):
            assert secret not in stored and secret not in (home / "mystery.json").read_text()


def test_a_new_mystery_clears_the_old_answer_and_picks_another_culprit(tmp_path):
    tracequest(tmp_path, "mystery", "new", "--seed", "4", "--no-start")
    tracequest(tmp_path, "answer", "slow-span", "route", "compute", "route")
    status = tracequest(tmp_path, "mystery", "status")
    assert "Mystery #4." in status.stdout and "'compute route' in route" in status.stdout
    assert "No assistant answer yet: tracequest answer assistant <service> <operation>" in status.stdout
    tracequest(tmp_path, "answer", "assistant", "assistant", "chat", "tq-mini")
    assert "Your assistant answer: 'chat tq-mini' in assistant." in tracequest(tmp_path, "mystery", "status").stdout
    again = tracequest(tmp_path, "mystery", "new", "--no-start")
    assert "earlier answer" in again.stdout
    seed = json.loads((tmp_path / "mystery.json").read_text())["seed"]
    assert culprit_for(seed) != culprit_for(4)
    assert json.loads((tmp_path / "answers.json").read_text()) == {}


def test_mystery_new_restarts_a_running_lab_with_the_mystery_on(tmp_path):
    lab = Lab(LabSettings(ports=Ports.free()), home=tmp_path)
    lab.up(log=lambda *_: None)
    try:
        done = tracequest(tmp_path, "mystery", "new", "--seed", "3")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Restarting the lab" in done.stdout and "tracequest load -n 20 -c 4" in done.stdout
        restarted = Lab.from_state(tmp_path)
        assert restarted.ports == lab.ports and restarted.service_env["TQ_MYSTERY"] == "3"
        shown = requests.get(f"{lab.frontend_url}/config", timeout=5).json()
        assert "mystery" in shown and "flags" not in shown  # the flags would give it away
        assert "The lab is running it." in tracequest(tmp_path, "mystery", "status").stdout
    finally:
        (Lab.from_state(tmp_path) or lab).down(log=lambda *_: None)


def test_mystery_new_takes_the_same_port_options_as_up(tmp_path):
    """With 8080 or 4317 busy, the mystery's lab can move, as `tracequest up --frontend-port` can."""
    ports = Ports.free()
    flags = [f"--{name.replace('_', '-')}-port={port}" for name, port in ports.as_dict().items()]
    try:
        done = tracequest(tmp_path, "mystery", "new", "--seed", "4", *flags)
        assert done.returncode == 0, done.stdout + done.stderr
        started = Lab.from_state(tmp_path)
        assert started.ports == ports and started.service_env["TQ_MYSTERY"] == "4"
        assert requests.get(f"http://127.0.0.1:{ports.frontend}/health", timeout=5).status_code == 200
        refused = tracequest(tmp_path, "mystery", "start", "--frontend-port", "0")
        assert refused.returncode == 2 and "not 0" in refused.stderr
    finally:
        lab = Lab.from_state(tmp_path)
        if lab:
            lab.down(log=lambda *_: None)


# --- the check, before there is anything to run ---------------------------------------

def run_check(home: Path) -> str:
    """`pytest checks/test_03_mystery.py` as a learner's would run; its failure text, or ''."""
    report = home / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/test_03_mystery.py",
                           "--quest-report", str(report), "--no-progress", "-q"], cwd=ROOT,
                          env=child_env(TRACEQUEST_HOME=str(home)), capture_output=True,
                          text=True, timeout=120)
    assert report.exists(), done.stdout + done.stderr
    quest = json.loads(report.read_text())["quests"]["03"]
    return "" if quest["passed"] else flat(quest["checks"][0]["message"])


def test_the_check_asks_for_a_mystery_first(tmp_path):
    text = run_check(tmp_path)
    assert "no mystery is drawn yet" in text and "tracequest mystery new" in text


def test_the_check_asks_for_an_answer_next(tmp_path):
    tracequest(tmp_path, "mystery", "new", "--seed", "2", "--no-start")
    text = run_check(tmp_path)
    assert "answer to mystery #2 (slow-span)" in text and "tracequest answer slow-span" in text
    second = flat(json.loads((tmp_path / "results.json").read_text())["quests"]["03"]["checks"][1]["message"])
    assert "answer to mystery #2 (assistant)" in second and "tracequest answer assistant" in second


# --- real runs: every culprit, and the check end to end ---------------------------

def parent_of(traces, culprit) -> tuple[str, str]:
    """The operation right above the culprit's spans: the likeliest wrong answer."""
    span = traces[0].find(name=culprit.operation, service=culprit.service)[0]
    return span.parent.service, span.parent.name


def check_command(home: Path, seed: int, service: str, operation: str,
                  assistant: tuple[str, str] | None = None) -> subprocess.CompletedProcess:
    """Draw, answer and check, as a learner would (no lab of theirs is running)."""
    tracequest(home, "mystery", "new", "--seed", str(seed), "--no-start")
    tracequest(home, "answer", "slow-span", service, *operation.split())
    if assistant:
        tracequest(home, "answer", "assistant", assistant[0], *assistant[1].split())
    return tracequest(home, "check", "03", timeout=240)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One demo run per culprit (two of them asking the assistant too), and two full checks, started together."""
    base = tmp_path_factory.mktemp("mystery")
    payment, route = CULPRITS[SEEDS["slow payment provider"]], CULPRITS[SEEDS["slow route computation"]]
    assert ASSISTANT_SEEDS == {SLOW_MODEL.kind: SEEDS[route.kind], LOOP.kind: SEEDS[payment.kind]}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.kind: pool.submit(run_mystery, SEEDS[c.kind],
                                       questions=QUESTIONS if SEEDS[c.kind] in ASSISTANT_SEEDS.values() else ())
                   for c in CULPRITS}
        # Both answers right, spelled as a learner might: the quest passes.
        futures["right"] = pool.submit(check_command, base / "right", SEEDS[route.kind],
                                       route.service, route.operation.upper(), ("Assistant", "CHAT tq-mini"))
        # The slow span's parent, and no assistant answer yet (so the check asks no questions).
        futures["parent"] = pool.submit(check_command, base / "parent", SEEDS[payment.kind],
                                        "frontend", "GET /dispatch")
        yield futures


def dispatch_traces(runs, kind: str):
    return runs[kind].result().dispatch


def assistant_traces(runs, assistant_kind: str):
    """The assistant's traces of the run whose seed draws this assistant culprit."""
    seed = ASSISTANT_SEEDS[assistant_kind]
    return runs[CULPRITS[seed].kind].result().assistant


@pytest.mark.parametrize("culprit", CULPRITS, ids=lambda c: c.kind)
def test_each_culprit_holds_the_most_self_time(runs, culprit):
    traces = dispatch_traces(runs, culprit.kind)
    votes = [slowest_operation(t) for t in traces]
    assert slowest_overall(traces) == culprit.answer, votes
    assert votes.count(culprit.answer) > len(traces) / 2, votes


@pytest.mark.parametrize("culprit", CULPRITS, ids=lambda c: c.kind)
def test_the_right_answer_passes_however_it_is_spelled(runs, culprit):
    traces = dispatch_traces(runs, culprit.kind)
    judge(traces, culprit.service, culprit.operation)
    judge(traces, culprit.service.upper(), "  " + culprit.operation.lower().replace(" ", "  "))


@pytest.mark.parametrize("culprit", CULPRITS, ids=lambda c: c.kind)
def test_the_culprits_parent_is_told_to_look_at_self_time(runs, culprit):
    traces = dispatch_traces(runs, culprit.kind)
    service, operation = parent_of(traces, culprit)
    with pytest.raises(QuestFailure) as failed:
        judge(traces, service, operation)
    text = flat(str(failed.value))
    assert f"'{operation}' ({service}) lasts" in text and "is slow only because its child" in text
    assert "look at self time, not duration" in text


@pytest.mark.parametrize("kind", ["slow SQL query", "retry storm", "slow route computation"])
def test_a_name_the_trace_lacks_gets_the_list_of_names(runs, kind):
    culprit = CULPRITS[SEEDS[kind]]
    traces = dispatch_traces(runs, kind)
    with pytest.raises(QuestFailure) as failed:
        judge(traces, culprit.service, "slow thing")
    text = flat(str(failed.value))
    assert f"{culprit.service} has no span called 'slow thing'" in text
    assert "Its spans are:" in text and f"'{culprit.operation}'" in text
    with pytest.raises(QuestFailure) as failed:
        judge(traces, "database", culprit.operation)
    assert "The services are: customer, driver, frontend, route." in flat(str(failed.value))
    other = next(s for s in SERVICES if s != culprit.service)
    with pytest.raises(QuestFailure) as failed:
        judge(traces, other, culprit.operation)
    assert f"Spans of that name come from {culprit.service}." in flat(str(failed.value))


@pytest.mark.parametrize("kind", ["lock contention", "slow Redis lookup", "slow payment provider"])
def test_a_span_with_little_self_time_gets_the_numbers(runs, kind):
    traces = dispatch_traces(runs, kind)
    wrong = ("route", "compute route") if kind == "lock contention" else ("customer", "SELECT")
    with pytest.raises(QuestFailure) as failed:
        judge(traces, *wrong)
    text = flat(str(failed.value))
    assert f"'{wrong[1]}' ({wrong[0]}) holds" in text and "of its own in a typical trace" in text
    assert "the slowest operation holds" in text and "add up a span that repeats" in text


# --- the assistant's half ------------------------------------------------------------

def test_every_seed_draws_an_assistant_culprit_and_the_runs_cover_both():
    assert set(ASSISTANT_SEEDS) == {c.kind for c in ASSISTANT_CULPRITS}
    assert all(c.service == "assistant" for c in ASSISTANT_CULPRITS)


@pytest.mark.parametrize("helper", ASSISTANT_CULPRITS, ids=lambda c: c.kind)
def test_each_assistant_culprit_shows_as_the_check_reads_it(runs, helper):
    traces = assistant_traces(runs, helper.kind)
    assert len(traces) == len(QUESTIONS) and all(t.root.name == "POST /ask" for t in traces)
    assert mystery_assistant.culprit(traces) == helper.answer
    assert mystery_assistant.most_gave_up(traces) == (helper is LOOP)
    mystery_assistant.judge(traces, *helper.answer)
    mystery_assistant.judge(traces, " ASSISTANT", helper.operation.upper())


def test_a_slow_model_answered_with_the_agent_span_is_told_to_look_at_self_time(runs):
    traces = assistant_traces(runs, SLOW_MODEL.kind)
    with pytest.raises(QuestFailure) as failed:
        mystery_assistant.judge(traces, "assistant", "invoke_agent dispatch-helper")
    text = flat(str(failed.value))
    assert "'invoke_agent dispatch-helper' (assistant) lasts" in text and "it is slow only because of" in text
    assert "look at self time, not duration" in text


def test_a_loop_answered_with_the_model_call_is_told_the_agent_gave_up(runs):
    traces = assistant_traces(runs, LOOP.kind)
    with pytest.raises(QuestFailure) as failed:
        mystery_assistant.judge(traces, "assistant", "chat tq-mini")
    text = flat(str(failed.value))
    assert f"in {len(QUESTIONS)} of {len(QUESTIONS)} traces the agent span 'invoke_agent dispatch-helper' " \
           "ends in error after 6 iterations (max_iterations)" in text
    assert "'chat tq-mini' is one step inside that loop" in text
    assert "its trouble is the loop itself" in text


def test_an_assistant_answer_in_another_service_is_sent_back_to_the_assistant(runs):
    traces = assistant_traces(runs, LOOP.kind)
    with pytest.raises(QuestFailure) as failed:
        mystery_assistant.judge(traces, "driver", "GetDriver")
    text = flat(str(failed.value))
    assert "'GetDriver' in driver is not the assistant's own" in text
    assert "belongs to the slow-span question" in text


# --- the check end to end ------------------------------------------------------------

def test_tracequest_check_passes_the_right_answers_and_awards_the_badge(runs):
    done = runs["right"].result()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ 03" in done.stdout and "+200 XP this run." in done.stdout
    assert "New badge: Sleuth" in done.stdout


def test_tracequest_check_sends_the_parent_of_the_culprit_down_the_tree(runs):
    done = runs["parent"].result()
    text = flat(done.stdout)
    assert done.returncode == 1 and "✗ 03" in text
    assert "'GET /dispatch' (frontend) lasts" in text and "its child 'authorize payment'" in text
    assert "look at self time, not duration" in text
    # The board details the first failing check; the assistant's is listed, unanswered.
    assert "✗ 03 Your answer names the assistant's operation its trouble is in" in text
    assert "Traceback" not in done.stdout + done.stderr
