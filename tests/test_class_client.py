"""The learner's side of the class board, against a real board started in-process on 127.0.0.1.

A learner joins once; each `tracequest check` then queues one record per quest
on disk and sends it. These tests read what the board stored through the
instructor's export, take the board down and up again on the same database,
send the same queue twice, and make the board refuse a record.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tracequest.classroom import client
from tracequest.classroom.records import FIELDS
from tracequest.classroom.server import start_board
from tracequest.cli import main
from tracequest.host.ports import free_port
from tracequest.quests.registry import get_quest
from tracequest.quests.results import CheckResult, RunResults
from tracequest.quests.runner import run_checks

REPO = Path(__file__).resolve().parent.parent


class Board:
    """A real class board on a fixed free port, which a test can stop and start again on its database."""

    def __init__(self, db: Path):
        self.db, self.port = db, free_port()
        self.handle = None
        self.start()

    def start(self) -> None:
        self.handle = start_board(self.db, port=self.port)
        assert self.handle.url.rstrip("/") == self.url

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()
            self.handle = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def code(self) -> str:
        return self.handle.code

    def export(self) -> list[dict]:
        """Every record the board stored, as the instructor's JSON export gives them."""
        response = requests.get(f"{self.url}/api/export.json", timeout=5,
                                headers={"Authorization": f"Bearer {self.handle.instructor_token}"})
        assert response.status_code == 200, response.text
        data = response.json()
        return data["records"] if isinstance(data, dict) else data


@pytest.fixture
def board(tmp_path):
    running = Board(tmp_path / "board" / "board.db")
    yield running
    running.stop()


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home" / ".tracequest"
    monkeypatch.setenv("TRACEQUEST_HOME", str(home))
    return home


@pytest.fixture
def wire(monkeypatch):
    """Every HTTP request the client makes: (method, url, headers, body)."""
    seen = []
    send = requests.adapters.HTTPAdapter.send

    def spy(self, request, *args, **kwargs):
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        seen.append((request.method, request.url, dict(request.headers), body))
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    return seen


def results_of(*quests: tuple[str, bool]) -> RunResults:
    """A check run's results: per quest, one passing check and (when failing) a failing one."""
    results = RunResults()
    for quest_id, passed in quests:
        results.add(CheckResult(quest_id, f"checks/test_x.py::test_it_starts[{quest_id}]", "starts",
                                True, seconds=1.25))
        if not passed:
            results.add(CheckResult(quest_id, "checks/test_x.py::test_context_crosses_the_hop[a]",
                                    "crosses", False, "Expected: one trace\nFound: two",
                                    "\n  the traceparent header is missing: inject it.\nmore", 2.5))
    return results


def joined(board: Board, home: Path, name: str = "Ada") -> dict:
    return client.join(board.url, board.code, name, home)


def quiet_report(results: RunResults, home: Path) -> tuple[client.Summary | None, list[str]]:
    lines = []
    return client.report(results, home, out=lines.append), lines


# --- joining -------------------------------------------------------------------

def test_join_keeps_the_token_in_a_private_file_and_only_in_the_authorization_header(board, home, wire):
    state = joined(board, home)
    path = home / client.CLASS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = json.loads(path.read_text())
    assert set(kept) == {"url", "learner_id", "token", "name", "attempts"}
    assert kept["url"] == board.url and kept["name"] == "Ada" and kept["token"] == state["token"]
    summary, _ = quiet_report(results_of(("01", True)), home)
    assert summary.stored == 1
    client.status(home, out=lambda line: None)
    assert [url for _, url, _, _ in wire] == [f"{board.url}/api/join", f"{board.url}/api/records",
                                              f"{board.url}/api/board"]
    for method, url, headers, body in wire:
        assert kept["token"] not in url
    records_request = wire[1]
    assert records_request[2]["Authorization"] == f"Bearer {kept['token']}"
    assert kept["token"] not in records_request[3]
    assert "Authorization" not in wire[0][2]


def test_a_wrong_code_gives_the_boards_sentence_and_writes_nothing(board, home):
    with pytest.raises(client.ClassError) as caught:
        client.join(board.url, "TRACE-NOPE", "Ada", home)
    message = str(caught.value)
    assert message.startswith(f"the class board at {board.url} refused: ") and "\n" not in message
    assert "HTTP" not in message   # the board's own sentence, not a status code
    assert not (home / client.CLASS_FILE).exists()


@pytest.mark.parametrize("url, words", [
    ("ftp://127.0.0.1:8090", "starts with http:// or https://"),
    ("127.0.0.1:8090", "starts with http:// or https://"),
    ("http://", "names no machine"),
    ("http://host:99999", "port is not a number"),
    ("http://host:8090/#learner=abc", "has a ?... or #... part"),
])
def test_a_bad_board_address_is_refused_with_one_sentence(url, words):
    with pytest.raises(client.ClassError, match=re.escape(words)):
        client.check_url(url)


# --- what is sent --------------------------------------------------------------

def test_a_record_has_exactly_the_records_fields_as_sent_and_as_the_board_stored(board, home, wire):
    state = joined(board, home)
    summary, lines = quiet_report(results_of(("01", True), ("04", False)), home)
    assert lines == ["Class board: sent 2 results."]
    assert (summary.stored, summary.duplicates, summary.queued) == (2, 0, 0)
    sent = json.loads(wire[-1][3])["records"]
    assert [tuple(record) for record in sent] == [FIELDS, FIELDS]
    stored = {record["quest"]: record for record in board.export()}
    assert set(stored) == {"01", "04"}
    for record in sent:
        assert {field: stored[record["quest"]][field] for field in FIELDS} == record
        assert set(stored[record["quest"]]) - set(FIELDS) <= {"name", "received_at"}
    failed = stored["04"]
    assert failed["learner_id"] == state["learner_id"] and failed["verdict"] == "failed"
    assert failed["property"] == "test_context_crosses_the_hop"
    assert failed["hint"] == "the traceparent header is missing: inject it."
    assert failed["duration_s"] == 3.75 and failed["attempt"] == 1
    assert stored["01"]["property"] == stored["01"]["hint"] == "" and stored["01"]["verdict"] == "passed"
    quiet_report(results_of(("04", True)), home)
    assert sorted(r["attempt"] for r in board.export() if r["quest"] == "04") == [1, 2]
    assert json.loads((home / client.CLASS_FILE).read_text())["attempts"] == {"01": 1, "04": 2}


# --- the board away, and back ----------------------------------------------------

def test_the_board_down_queues_the_results_and_they_arrive_once_it_is_back(board, home):
    joined(board, home)
    board.stop()
    summary, lines = quiet_report(results_of(("01", False), ("02", True)), home)   # raises nothing
    assert lines == ["Class board unreachable: 2 results queued; they go with your next check "
                     "(or `tracequest class status`)."]
    assert summary.queued == 2 and summary.unreachable
    queued = client.pending(home)
    assert len(queued) == 2 and all(len(path.stem) == 32 for path in queued)
    assert not list(client.queue_dir(home).glob(".*"))   # no temp file left behind
    board.start()   # the same database, the same port
    summary = client.send_pending(home)
    assert (summary.stored, summary.duplicates, summary.queued, summary.rejected) == (2, 0, 0, 0)
    assert client.pending(home) == []
    ids = [record["attempt_id"] for record in board.export()]
    assert sorted(ids) == sorted(path.stem for path in queued)


def test_the_same_queue_sent_twice_is_stored_once(board, home):
    """A 200 lost on the way back: the records stay queued, go again, and count as duplicates."""
    joined(board, home)
    board.stop()
    quiet_report(results_of(("01", True), ("03", False)), home)
    kept = {path.name: path.read_text() for path in client.pending(home)}
    board.start()
    assert client.send_pending(home).stored == 2
    for name, text in kept.items():   # as if the board's answer had never arrived
        (client.queue_dir(home) / name).write_text(text)
    summary = client.send_pending(home)
    assert (summary.stored, summary.duplicates, summary.queued) == (0, 2, 0)
    ids = [record["attempt_id"] for record in board.export()]
    assert sorted(ids) == sorted(Path(name).stem for name in kept)


def test_a_record_the_board_refuses_moves_to_rejected_and_status_says_so(board, home):
    state = joined(board, home)
    board.stop()
    quiet_report(results_of(("01", True)), home)
    good = client.pending(home)[0]
    foreign = {**json.loads(good.read_text()), "attempt_id": "f" * 32, "learner_id": "someone-else"}
    client.enqueue([foreign], home)
    board.start()
    summary = client.send_pending(home)
    assert (summary.stored, summary.rejected, summary.queued) == (1, 1, 0)
    refused = client.rejected(home)
    assert [path.name for path in refused] == [f"{'f' * 32}.json"]
    assert json.loads(refused[0].read_text()) == foreign   # kept whole, not lost
    error = client.refusal_of(refused[0])
    assert error.startswith("HTTP 403: ")
    assert [record["learner_id"] for record in board.export()] == [state["learner_id"]]
    lines = []
    assert client.status(home, out=lines.append) is True
    text = "\n".join(lines)
    assert "Refused by the board: 1 result" in text and error in text
    assert "Queued: none." in text and "1 passed (01)" in text


def test_leave_deletes_the_class_file_and_the_queue_saying_what_is_dropped(board, home):
    joined(board, home)
    board.stop()
    quiet_report(results_of(("01", True), ("02", True)), home)
    lines = []
    assert client.leave(home, out=lines.append) is True
    assert lines[0] == f"Left the class at {board.url}: `tracequest check` no longer reports to it."
    assert "Dropped 2 results not sent yet." in lines[1]
    assert not (home / client.CLASS_FILE).exists() and not client.queue_dir(home).exists()
    summary, printed = quiet_report(results_of(("01", True)), home)
    assert summary is None and printed == []   # not in a class: a check says nothing
    lines.clear()
    assert client.status(home, out=lines.append) is False and lines[0].startswith("Not in a class.")


def test_report_never_raises_into_the_check(home):
    home.mkdir(parents=True)
    (home / client.CLASS_FILE).write_text("{not json")
    summary, lines = quiet_report(results_of(("01", True)), home)
    assert summary is None and len(lines) == 1
    assert lines[0].startswith("Class board: this check was not reported (")


# --- retries, against a stub that misbehaves on purpose ----------------------------

class Flaky(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict, dict]] = []
    bodies: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        status, headers, answer = self.answers.pop(0) if self.answers else (
            200, {}, {"stored": len(body["records"]), "duplicates": 0})
        data = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky(home):
    Flaky.answers, Flaky.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    home.mkdir(parents=True)
    (home / client.CLASS_FILE).write_text(json.dumps(
        {"url": url, "learner_id": "L1", "token": "t", "name": "Ada", "attempts": {}}))
    yield Flaky
    server.shutdown()
    server.server_close()


def test_busy_and_broken_answers_are_retried_then_delivered(flaky, home):
    flaky.answers = [(503, {}, {"error": "busy"}), (429, {"Retry-After": "0.2"}, {"error": "slow down"})]
    quiet_report(results_of(("01", True)), home)
    assert len(flaky.bodies) == 3 and client.pending(home) == []


def test_a_retry_after_longer_than_the_time_left_keeps_the_records_queued(flaky, home):
    flaky.answers = [(429, {"Retry-After": "30"}, {"error": "slow down"})]
    summary, lines = quiet_report(results_of(("01", True)), home)
    assert len(flaky.bodies) == 1 and summary.queued == 1 and summary.unreachable
    assert lines[0].startswith("Class board unreachable: 1 result queued")


def test_a_200_that_does_not_count_every_record_keeps_them_queued(flaky, home):
    flaky.answers = [(200, {}, {"stored": 1, "duplicates": 0})]
    summary, lines = quiet_report(results_of(("01", True), ("02", True)), home)
    assert summary.queued == 2 and "the board counted 1 of 2 records" in lines[0]


# --- `tracequest check` reports; the `class` commands ------------------------------

@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone with one tiny check file for quest 01: one check passes, one fails with a hint."""
    root = tmp_path_factory.mktemp("clone")
    for folder in ("services", "compose", "labs"):
        (root / folder).mkdir()
    (root / "checks").mkdir()
    shutil.copy(REPO / "checks" / "pytest.ini", root / "checks" / "pytest.ini")
    (root / "checks" / get_quest("01").check_file).write_text(textwrap.dedent('''
        import pytest
        from tracequest.expect.failure import fail

        pytestmark = pytest.mark.quest("01")

        def test_it_starts():
            """It starts."""

        def test_the_span_is_named():
            """The span is named."""
            fail("a span named eta", "an unnamed span", hint="name the service eta.")
    '''))
    return root


def test_run_checks_hands_the_results_over_once_before_the_board(clone, home, monkeypatch):
    monkeypatch.chdir(clone)
    out, calls = io.StringIO(), []
    code = run_checks(["01"], out=out, on_results=lambda results: calls.append((results, out.getvalue())))
    assert code == 1 and len(calls) == 1
    results, printed_before = calls[0]
    assert isinstance(results, RunResults) and set(results.quests) == {"01"}
    assert [check.passed for check in results.quests["01"].checks] == [True, False]
    assert "quest board" not in printed_before and "quest board" in out.getvalue()


def test_tracequest_check_reports_to_the_board_it_joined(clone, board, home, monkeypatch, capsys):
    monkeypatch.chdir(clone)
    assert main(["class", "join", board.url, board.code, "--name", "Grace"]) == 0
    joined_out = capsys.readouterr().out
    assert joined_out.startswith(f"Joined the class at {board.url} as 'Grace'.")
    assert main(["check", "01"]) == 1
    out = capsys.readouterr().out
    assert "Class board: sent 1 result.\n\nTrace Quest - quest board" in out
    [record] = board.export()
    assert (record["quest"], record["verdict"], record["property"], record["hint"]) == (
        "01", "failed", "test_the_span_is_named", "name the service eta.")
    assert main(["class", "status"]) == 0
    assert "In the class at" in capsys.readouterr().out
    assert main(["class", "leave"]) == 0 and not (home / client.CLASS_FILE).exists()
    assert main(["class", "status"]) == 1


def test_class_help_lists_its_actions(capsys):
    assert main(["class", "--help"]) == 0
    out = capsys.readouterr().out
    for action in ("serve", "join", "leave", "status"):
        assert action in out
    assert main(["class", "serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 127.0.0.1)" in out and "(default: 8090)" in out and "(default: 10)" in out


def test_join_with_a_bad_address_exits_2_with_one_sentence(home, capsys):
    assert main(["class", "join", "ftp://board:8090", "TRACE-7Q4K", "--name", "Ada"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracequest class join: error: argument URL: 'ftp://board:8090' is not a board")
    assert err.count("\n") == 1 and not (home / client.CLASS_FILE).exists()


def test_join_where_no_board_answers_exits_1_with_one_sentence(home, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["class", "join", url, "TRACE-7Q4K", "--name", "Ada"]) == 1
    err = capsys.readouterr().err
    assert err == (f"tracequest: no class board answers at {url}; check the address with your "
                   "instructor (and that you are on the workshop's network)\n")
