"""The class board under a whole class at once, and through a crash in the middle of one.

Loopback only and bounded. 300 learners join through the HTTP API and report
a workshop's mix of checks from 32 threads while the instructor's page polls
the board: every record is on the board exactly once afterwards, and every
poll was answered. Then a board is killed with SIGKILL while learners' checks
report to it through the real client: what it acknowledged survives in the
SQLite file, what could not be sent waits in each learner's queue on disk,
and once a new board runs on the same file and port, the queues deliver
everything exactly once. Speed is not asserted here:
``benchmarks/class_board_load.py`` measures it.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tracequest.classroom import client
from tracequest.classroom.server import Limits, start_board, token_file
from tracequest.host.ports import free_port
from tracequest.quests.results import CheckResult, RunResults

LEARNERS = 300
WORKERS = 32
# 300 learners join from one address (127.0.0.1), as a room behind one NAT would.
CLASSROOM = Limits(join_rate=1000.0, join_burst=1000)
POLL_INTERVAL_S = 0.1   # the instructor's page: well inside its token's 20 requests/s

# Each learner's six checks, in order: (quest, verdict, property, hint). Learners differ in
# quest 04's hint (two of three miss the inject, the rest the extract) and in whether they pass it.
INJECT = ("test_one_trace_spans_both_services", "the traceparent header is missing: inject() it into the headers.")
EXTRACT = ("test_one_trace_spans_both_services", "pricing ignores the header: extract() the context first.")
NAMED = ("test_the_eta_service_sends_a_named_trace", "every span must carry service.name = eta.")
OWN_SPAN = ("test_compute_fare_has_its_own_span", "wrap the fare computation in a span of its own.")


def script(index: int) -> list[tuple[str, str, str, str]]:
    """Learner ``index``'s six checks."""
    stuck = INJECT if index % 3 else EXTRACT
    checks = [("01", "failed", *NAMED), ("01", "passed", "", ""), ("02", "failed", *OWN_SPAN),
              ("04", "failed", *stuck)]
    if index % 4 == 0:     # a quarter stay stuck on 04 and try quest 02 again
        checks += [("04", "failed", *stuck), ("02", "passed", "", "")]
    else:                  # the rest get 04, and solve the mystery
        checks += [("04", "passed", "", ""), ("03", "passed", "", "")]
    return checks


def record(learner_id: str, quest: str, verdict: str, prop: str, hint: str, attempt: int) -> dict:
    return {"attempt_id": uuid.uuid4().hex, "learner_id": learner_id, "quest": quest, "verdict": verdict,
            "property": prop, "hint": hint, "attempt": attempt, "duration_s": 3.2, "tool_version": "0.1.0",
            "at": client.now_rfc3339()}


def records_of(learner_id: str, index: int) -> list[dict]:
    attempts: Counter = Counter()
    out = []
    for quest, verdict, prop, hint in script(index):
        attempts[quest] += 1
        out.append(record(learner_id, quest, verdict, prop, hint, attempts[quest]))
    return out


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def exported_ids(url: str, instructor_token: str) -> list[str]:
    response = requests.get(f"{url}/api/export.json", headers=bearer(instructor_token), timeout=30)
    assert response.status_code == 200, response.text
    return [row["attempt_id"] for row in response.json()["records"]]


class Poller(threading.Thread):
    """The instructor's page: GET /api/board every POLL_INTERVAL_S, each answer's status and latency kept."""

    def __init__(self, url: str, token: str):
        super().__init__(name="instructor-poller", daemon=True)
        self.url, self.token = url, token
        self.answers: list[tuple[int | str, float]] = []
        self.learners_seen = 0
        self.done = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            session.headers.update(bearer(self.token))
            while not self.done.is_set():
                started = time.perf_counter()
                try:
                    response = session.get(f"{self.url}/api/board", timeout=30)
                    status: int | str = response.status_code
                    if status == 200:
                        self.learners_seen = max(self.learners_seen, len(response.json()["learners"]))
                except requests.RequestException as exc:
                    status = f"{type(exc).__name__}: {exc}"
                self.answers.append((status, time.perf_counter() - started))
                self.done.wait(POLL_INTERVAL_S)


def test_300_learners_at_once_lose_nothing_duplicate_nothing_and_every_poll_is_answered(tmp_path):
    with start_board(tmp_path / "class" / "board.db", limits=CLASSROOM) as board:
        poller = Poller(board.url, board.instructor_token)
        poller.start()
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            return local.session

        def join(index: int) -> tuple[str, str]:
            response = session().post(f"{board.url}/api/join", timeout=30,
                                      json={"code": board.code, "name": f"Learner {index:03d}"})
            assert response.status_code == 201, response.text
            return response.json()["learner_id"], response.json()["token"]

        def send(token: str, body) -> dict:
            response = session().post(f"{board.url}/api/records", json=body, headers=bearer(token), timeout=30)
            assert response.status_code == 200, (response.status_code, response.text)
            return response.json()

        try:
            with ThreadPoolExecutor(WORKERS) as pool:
                joined = list(pool.map(join, range(LEARNERS)))
                plans = [records_of(learner_id, index) for index, (learner_id, _) in enumerate(joined)]
                # Round by round, as a class works: every learner's first check, then every second one...
                # Every tenth learner's last check goes with its first record again, as after a lost
                # answer: the board must count that one a duplicate.
                futures = []
                for step in range(6):
                    for index, ((_, token), plan) in enumerate(zip(joined, plans)):
                        if step == 5 and index % 10 == 0:
                            body, expected = {"records": [plan[5], plan[0]]}, {"stored": 1, "duplicates": 1}
                        else:
                            body, expected = plan[step], {"stored": 1, "duplicates": 0}
                        futures.append((pool.submit(send, token, body), expected))
                answers = [(future.result(), expected) for future, expected in futures]
        finally:
            poller.done.set()
            poller.join(timeout=60)

        assert [answer for answer, expected in answers if answer != expected] == []
        sent = [r["attempt_id"] for plan in plans for r in plan]
        stored = exported_ids(board.url, board.instructor_token)
        assert len(sent) == LEARNERS * 6 and len(set(sent)) == len(sent)
        lost = set(sent) - set(stored)
        twice = sorted(attempt_id for attempt_id, count in Counter(stored).items() if count > 1)
        assert (len(lost), twice, len(stored)) == (0, [], len(sent)), f"lost {sorted(lost)[:5]}"
        assert board.store.record_count() == len(sent)

        # The board's summary agrees with what was sent.
        data = requests.get(f"{board.url}/api/board", headers=bearer(board.instructor_token), timeout=30).json()
        finishing = sum(1 for index in range(LEARNERS) if index % 4)
        assert len(data["learners"]) == LEARNERS
        assert data["per_quest"]["01"] == {"done": LEARNERS, "tried": LEARNERS, "stuck": None}
        assert data["per_quest"]["04"]["done"] == finishing
        # Stuck on 04: the quarter who never passed it, one property; most of them with inject's hint.
        assert data["per_quest"]["04"]["stuck"] == {"property": INJECT[0], "hint": INJECT[1],
                                                    "learners": LEARNERS - finishing}
        assert len(data["mystery_race"]) == finishing
        assert sum(cell["attempts"] for row in data["learners"] for cell in row["cells"].values()) == len(sent)

    statuses = Counter(status for status, _ in poller.answers)
    assert len(poller.answers) >= 3, "the instructor's poller did not run during the load"
    assert statuses == {200: len(poller.answers)}, f"the board did not answer every poll: {statuses}"
    assert poller.learners_seen == LEARNERS
    latencies = sorted(seconds for _, seconds in poller.answers)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    print(f"\n{len(poller.answers)} polls of GET /api/board during the load: "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms")


# --- a board killed mid-class ---------------------------------------------------

RESTART_LEARNERS = 20
ACKNOWLEDGED_BEFORE_KILL = 120   # records the first board acknowledges before it is killed
BOARD_PROGRAM = ("import sys; from tracequest.classroom.server import serve; "
                 "serve(sys.argv[1], port=int(sys.argv[2]), out=lambda line: print(line, flush=True))")


def check_results(turn: int) -> RunResults:
    """One `tracequest check` run's results: quest 04 (failing with its hint, or passing), and every
    other run quest 01 as well."""
    results = RunResults()
    quests = [("04", turn % 3 != 2), ("01", True)] if turn % 2 else [("04", turn % 3 == 2)]
    for quest, passed in quests:
        nodeid = f"checks/test_{quest}.py::test_one_trace_spans_both_services[request]"
        results.add(CheckResult(quest, nodeid, "one trace", passed, "" if passed else "Expected: one trace",
                                "" if passed else INJECT[1], 1.5))
    return results


class Learner(threading.Thread):
    """One learner in their own lab home, running checks that report through the real client."""

    def __init__(self, home: Path, stop: threading.Event):
        super().__init__(daemon=True)
        self.home, self.stop = home, stop
        self.turn = 0
        self.killed_at: float | None = None   # set by the test when it kills the board
        self.acknowledged: dict[str, int] = {}   # quest -> attempts the board has acknowledged up to
        self.queued_while_down = 0            # reports after the kill that left records queued
        self.lines: list[str] = []
        self.failure: BaseException | None = None

    def attempts(self) -> dict[str, int]:
        return dict(client.load_class(self.home)["attempts"])

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.turn += 1
                after_kill = self.killed_at is not None
                summary = client.report(check_results(self.turn), self.home, out=self.lines.append)
                assert summary is not None and summary.rejected == 0, self.lines[-1:]
                if summary.queued == 0:   # the board counted everything this learner ever queued
                    self.acknowledged = self.attempts()
                elif after_kill and summary.unreachable:
                    self.queued_while_down += 1
                self.stop.wait(0.05)
        except BaseException as exc:   # the test reads it after join()
            self.failure = exc

    def acknowledged_keys(self, learner_id: str) -> set[tuple[str, str, int]]:
        return {(learner_id, quest, n) for quest, count in self.acknowledged.items() for n in range(1, count + 1)}


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_board_killed_mid_class_keeps_what_it_acknowledged_and_the_queues_deliver_the_rest(tmp_path):
    db, port = tmp_path / "class" / "board.db", free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "first-board.log"
    with open(log, "w") as out:   # a file, not a pipe: a board that logs a lot never blocks on it
        process = subprocess.Popen([sys.executable, "-c", BOARD_PROGRAM, str(db), str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    stop = threading.Event()
    learners: list[Learner] = []
    try:
        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return requests.get(f"{url}/health", timeout=1).ok
            except requests.ConnectionError:
                return False
        wait_for(up, 30, "the first board to start")
        instructor_token = token_file(db).read_text().strip()
        info = requests.get(f"{url}/api/board", headers=bearer(instructor_token), timeout=5).json()
        code = info["class"]["code_hint"]   # the instructor's view shows the whole code
        for index in range(RESTART_LEARNERS):
            home = tmp_path / "learners" / f"learner-{index:02d}" / ".tracequest"
            client.join(url, code, f"Learner {index:02d}", home)
            learners.append(Learner(home, stop))
        for learner in learners:
            learner.start()

        def acknowledged() -> int:
            return sum(sum(learner.acknowledged.values()) for learner in learners)
        wait_for(lambda: acknowledged() >= ACKNOWLEDGED_BEFORE_KILL, 60, "records to reach the first board")
        # Checks are reporting right now; the board dies without a chance to close anything.
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        for learner in learners:
            learner.killed_at = time.monotonic()
        wait_for(lambda: all(learner.queued_while_down for learner in learners), 60,
                 "every learner to report a check while the board is down")
    finally:
        stop.set()
        for learner in learners:
            learner.join(timeout=30)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert [learner.failure for learner in learners if learner.failure] == []
    assert any(line.startswith("Class board unreachable:") for learner in learners for line in learner.lines)

    ids = {}
    for learner in learners:
        learner_id = client.load_class(learner.home)["learner_id"]
        ids[learner.home] = learner_id
        queued = client.pending(learner.home)
        assert queued, f"{learner.home}: nothing queued although checks reported while the board was down"
        for path in queued:
            assert json.loads(path.read_text())["attempt_id"] == path.stem

    with start_board(db, port=port) as board:
        assert board.url == url and not board.created and board.instructor_token == instructor_token
        rows = requests.get(f"{url}/api/export.json", headers=bearer(instructor_token), timeout=10).json()["records"]
        on_board = {(row["learner_id"], row["quest"], row["attempt"]) for row in rows}
        for learner in learners:
            missing = learner.acknowledged_keys(ids[learner.home]) - on_board
            assert not missing, f"acknowledged before the kill, gone after the restart: {sorted(missing)[:5]}"
        acknowledged_count = sum(len(learner.acknowledged_keys(ids[learner.home])) for learner in learners)
        assert acknowledged_count >= ACKNOWLEDGED_BEFORE_KILL

        for learner in learners:   # the next check, or `tracequest class status`, sends the queue
            summary = client.send_pending(learner.home)
            assert (summary.queued, summary.rejected, summary.unreachable) == (0, 0, False), summary
            assert client.pending(learner.home) == []

        rows = requests.get(f"{url}/api/export.json", headers=bearer(instructor_token), timeout=10).json()["records"]
        expected = Counter((ids[learner.home], quest, n) for learner in learners
                           for quest, count in learner.attempts().items() for n in range(1, count + 1))
        assert Counter((row["learner_id"], row["quest"], row["attempt"]) for row in rows) == expected
        assert len({row["attempt_id"] for row in rows}) == len(rows) == sum(expected.values())
