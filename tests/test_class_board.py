"""The class board's server side: its store, its HTTP API, its live events and its security.

Every test talks HTTP to a real board started in this process on a free port of
127.0.0.1 (``start_board``), as the learners' checks and the instructor's page
do; one runs the board as its own process and kills it with SIGKILL.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from tracequest.classroom.records import FIELDS, ClassError
from tracequest.classroom.schema import Migration, migrate, migrations
from tracequest.classroom.server import CSRF_HEADER, CSRF_VALUE, Limits, banner, serve, start_board, token_file
from tracequest.classroom.store import BoardStore, rfc3339_ms
from tracequest.host.ports import free_port

SPEC_FIELDS = ("attempt_id", "learner_id", "quest", "verdict", "property", "hint", "attempt",
               "duration_s", "tool_version", "at")


@pytest.fixture
def board(tmp_path):
    with start_board(tmp_path / "class" / "board.db") as running:
        yield running


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def join(board, name: str = "Ada Lovelace", **extra) -> tuple[str, str]:
    response = requests.post(f"{board.url}/api/join", json={"code": board.code, "name": name, **extra}, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()["learner_id"], response.json()["token"]


def record(learner_id: str, quest: str = "04", verdict: str = "failed", attempt: int = 1,
           prop: str = "test_context_crosses_the_hop", hint: str = "Inject the context into the headers.",
           at_ns: int | None = None) -> dict:
    passed = verdict == "passed"
    return {"attempt_id": uuid.uuid4().hex, "learner_id": learner_id, "quest": quest, "verdict": verdict,
            "property": "" if passed else prop, "hint": "" if passed else hint, "attempt": attempt,
            "duration_s": 12.4, "tool_version": "0.1.0", "at": rfc3339_ms(at_ns or time.time_ns())}


def send(board, token: str, body, **kwargs) -> requests.Response:
    return requests.post(f"{board.url}/api/records", json=body, headers=bearer(token), timeout=5, **kwargs)


def get(board, path: str, token: str | None = None, **kwargs) -> requests.Response:
    return requests.get(f"{board.url}{path}", headers=bearer(token or board.instructor_token), timeout=5, **kwargs)


def exported(board) -> list[dict]:
    response = get(board, "/api/export.json")
    assert response.status_code == 200, response.text
    return response.json()["records"]


def assert_refused(response: requests.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error, str) and error
    return error


# The record.

def test_the_record_has_exactly_its_fields_and_they_come_back_as_sent(board):
    assert FIELDS == SPEC_FIELDS
    learner_id, token = join(board)
    sent = record(learner_id)
    assert send(board, token, sent).json() == {"stored": 1, "duplicates": 0}

    [back] = exported(board)
    assert back == {**sent, "name": "Ada Lovelace"}
    rows = list(csv.reader(io.StringIO(get(board, "/api/export.csv").text)))
    assert rows[0] == [*SPEC_FIELDS, "name"]
    assert rows[1] == [str(sent[name]) for name in SPEC_FIELDS] + ["Ada Lovelace"]


def test_a_record_sent_twice_is_stored_once(board):
    learner_id, token = join(board)
    first, second = record(learner_id, attempt=1), record(learner_id, attempt=2)
    assert send(board, token, first).json() == {"stored": 1, "duplicates": 0}
    assert send(board, token, first).json() == {"stored": 0, "duplicates": 1}
    # A retried batch: what arrived before counts as duplicate, the rest is stored.
    assert send(board, token, {"records": [first, second, second]}).json() == {"stored": 1, "duplicates": 2}

    assert sorted(row["attempt_id"] for row in exported(board)) == sorted([first["attempt_id"],
                                                                           second["attempt_id"]])
    cell = get(board, "/api/board").json()["learners"][0]["cells"]["04"]
    assert cell["attempts"] == 2


# Joining.

def test_join_with_the_class_code_admits_a_learner_with_their_own_token(board):
    response = requests.post(f"{board.url}/api/join", timeout=5,
                             json={"code": f"  {board.code.lower()} ", "name": "  Grace Hopper  "})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"learner_id", "token"}
    assert len(body["token"]) >= 43 and body["token"] != board.instructor_token
    assert get(board, "/api/board", body["token"]).json()["learners"][0]["name"] == "Grace Hopper"
    _, other_token = join(board, "Katherine Johnson")
    assert other_token != body["token"]


def test_join_with_a_wrong_code_is_refused(board):
    wrong = "TRACE-" + ("AAAA" if board.code != "TRACE-AAAA" else "BBBB")
    error = assert_refused(requests.post(f"{board.url}/api/join", json={"code": wrong, "name": "Eve"}, timeout=5),
                           403)
    assert "code" in error
    assert board.store.learners() == []


def test_a_closed_class_takes_no_joins_and_no_records(board):
    learner_id, token = join(board)
    assert requests.post(f"{board.url}/api/close", headers=bearer(board.instructor_token), timeout=5).json() == \
        {"closed": True}
    response = requests.post(f"{board.url}/api/join", json={"code": board.code, "name": "Late Larry"}, timeout=5)
    assert assert_refused(response, 403) == "the class is closed"
    assert assert_refused(send(board, token, record(learner_id)), 403) == "the class is closed"
    assert len(board.store.learners()) == 1 and board.store.record_count() == 0
    assert get(board, "/api/board").json()["class"]["closed"] is True


@pytest.mark.parametrize("body, word", [
    ({"name": ""}, "empty"),
    ({"name": "   "}, "empty"),
    ({"name": "x" * 81}, "80"),
    ({"name": "Ada\x00"}, "control"),
    ({"name": "Ada\u202eecalevol"}, "control"),
    ({"name": 42}, "string"),
    ({"name": "Ada", "github_username": "not a user!"}, "github_username"),
    ({"name": "Ada", "admin": True}, "admin"),
])
def test_join_refuses_a_bad_name_or_field(board, body, word):
    response = requests.post(f"{board.url}/api/join", json={"code": board.code, **body}, timeout=5)
    assert word in assert_refused(response, 400)
    assert board.store.learners() == []


# Who may do what.

def test_a_learner_cannot_write_another_learners_records(board):
    ada, ada_token = join(board, "Ada")
    bob, _ = join(board, "Bob")
    assert assert_refused(send(board, ada_token, record(bob)), 403)
    # Nothing of a batch is stored when one of its records is someone else's.
    assert_refused(send(board, ada_token, {"records": [record(ada), record(bob)]}), 403)
    assert board.store.record_count() == 0


def test_a_learner_sees_only_their_own_row(board):
    ada, ada_token = join(board, "Ada")
    bob, bob_token = join(board, "Bob Secretname")
    send(board, ada_token, record(ada, "04", "failed"))
    send(board, bob_token, {"records": [record(bob, "04", "failed"), record(bob, "03", "passed")]})

    response = get(board, "/api/board", ada_token)
    data = response.json()
    assert [learner["id"] for learner in data["learners"]] == [ada]
    assert "Secretname" not in response.text and bob not in response.text
    assert data["mystery_race"] == []
    assert data["per_quest"]["04"]["tried"] == 2          # the class's counts stay the class's
    assert data["class"]["code_hint"] != board.code
    assert data["viewer"] == {"role": "learner", "learner_id": ada}

    everyone = get(board, "/api/board").json()
    assert {learner["name"] for learner in everyone["learners"]} == {"Ada", "Bob Secretname"}
    assert [entry["name"] for entry in everyone["mystery_race"]] == ["Bob Secretname"]
    assert everyone["class"]["code_hint"] == board.code


INSTRUCTOR_ONLY = [
    ("get", "/api/export.json", {}),
    ("get", "/api/export.csv", {}),
    ("get", "/api/roster.csv", {}),
    ("post", "/api/roster", {"data": b"name\nMallory\n", "headers": {"Content-Type": "text/csv"}}),
    ("post", "/api/learners/{learner}/remove", {}),
    ("post", "/api/reset", {}),
    ("post", "/api/close", {}),
]


@pytest.mark.parametrize("method, path, kwargs", INSTRUCTOR_ONLY, ids=[path for _, path, _ in INSTRUCTOR_ONLY])
def test_instructor_actions_refuse_learners_and_strangers(board, method, path, kwargs):
    learner_id, token = join(board)
    send(board, token, record(learner_id))
    url = board.url + path.format(learner=learner_id)
    headers = kwargs.pop("headers", {})
    for auth, status in (({}, 401), (bearer(token), 403), (bearer("not-a-token-of-this-board-" + "x" * 20), 401),
                         ({"Authorization": f"Basic {token}"}, 401)):
        response = requests.request(method, url, headers={**headers, **auth}, timeout=5, **kwargs)
        assert_refused(response, status)
    assert [learner["id"] for learner in board.store.learners()] == [learner_id]
    assert board.store.record_count() == 1
    assert board.store.class_info().closed is False


def test_the_instructor_sends_no_records_and_a_token_in_the_query_string_is_ignored(board):
    learner_id, token = join(board)
    assert_refused(send(board, board.instructor_token, record(learner_id)), 403)
    assert_refused(requests.get(f"{board.url}/api/board?token={token}", timeout=5), 401)
    assert_refused(requests.get(f"{board.url}/api/events", timeout=5), 401)


def test_tokens_are_stored_hashed(board):
    learner_id, token = join(board)
    send(board, token, record(learner_id))
    stored = b"".join(path.read_bytes() for path in board.db_path.parent.iterdir() if path != token_file(board.db_path))
    assert board.db_path.name in {path.name for path in board.db_path.parent.iterdir()}
    for plain in (token, board.instructor_token):
        assert plain.encode() not in stored
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    assert token_file(board.db_path).stat().st_mode & 0o777 == 0o600
    assert board.db_path.stat().st_mode & 0o077 == 0


def test_a_session_sets_an_httponly_strict_cookie_that_signs_in_the_page(board):
    with requests.Session() as browser:
        response = browser.post(f"{board.url}/api/session", json={"token": board.instructor_token}, timeout=5)
        assert response.json() == {"role": "instructor", "learner_id": None}
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("tq_class=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert browser.get(f"{board.url}/api/board", timeout=5).json()["viewer"]["role"] == "instructor"
        # A POST signed in by the cookie alone could come from another site's form.
        assert_refused(browser.post(f"{board.url}/api/reset", timeout=5), 403)
        assert browser.post(f"{board.url}/api/reset", headers={CSRF_HEADER: CSRF_VALUE}, timeout=5).json() == \
            {"deleted": 0}
    wrong = requests.post(f"{board.url}/api/session", json={"token": "x" * 43}, timeout=5)
    assert_refused(wrong, 401)
    assert "Set-Cookie" not in wrong.headers


# Bad input.

def test_a_body_over_256_kib_is_refused_and_stores_nothing(board):
    learner_id, token = join(board)
    send(board, token, record(learner_id))
    big = {"records": [record(learner_id) for _ in range(100)], "padding": "x" * (300 * 1024)}
    response = requests.post(f"{board.url}/api/records", data=json.dumps(big), timeout=5,
                             headers={**bearer(token), "Content-Type": "application/json"})
    assert "256 KiB" in assert_refused(response, 413)
    response = requests.post(f"{board.url}/api/join", data=b" " * (257 * 1024), timeout=5,
                             headers={"Content-Type": "application/json"})
    assert_refused(response, 413)
    # Also where the body is never read: nothing is reset.
    response = requests.post(f"{board.url}/api/reset", data=b"x" * (257 * 1024), timeout=5,
                             headers=bearer(board.instructor_token))
    assert_refused(response, 413)
    assert board.store.record_count() == 1 and len(board.store.learners()) == 1


def _bad_bodies(learner_id: str) -> list[tuple[str, dict, int, str]]:
    """(what, requests kwargs, status, a word of the error) for each malformed or hostile body."""
    def changed(**fields):
        return {"json": {**record(learner_id), **fields}}
    good = record(learner_id)
    return [
        ("malformed JSON", {"data": b'{"attempt_id": ', "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
        ("NaN", {"data": json.dumps(good).replace("12.4", "NaN"),
                 "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
        ("wrong content type", {"data": json.dumps(good), "headers": {"Content-Type": "text/plain"}}, 415, "JSON"),
        ("form", {"data": {"attempt_id": good["attempt_id"]}}, 415, "JSON"),
        ("unknown field", changed(code="print('hi')"), 400, "code"),
        ("missing field", {"json": {k: v for k, v in good.items() if k != "hint"}}, 400, "hint"),
        ("unknown quest", changed(quest="99"), 400, "quest"),
        ("bad verdict", changed(verdict="won"), 400, "verdict"),
        ("overlong hint", changed(hint="h" * 201), 400, "hint"),
        ("bad attempt_id", changed(attempt_id="../../etc/passwd"), 400, "attempt_id"),
        ("attempt zero", changed(attempt=0), 400, "attempt"),
        ("negative duration", changed(duration_s=-1), 400, "duration_s"),
        ("bad time", changed(at="yesterday"), 400, "at"),
        ("not an object", {"json": [good]}, 400, "object"),
        ("records not a list", {"json": {"records": good}}, 400, "list"),
        ("too many records", {"json": {"records": [record(learner_id) for _ in range(101)]}}, 400, "100"),
        ("one bad in a batch", {"json": {"records": [good, {**record(learner_id), "verdict": "maybe"}]}}, 400,
         "record 2"),
        ("batch with extra keys", {"json": {"records": [good], "learner_id": "x"}}, 400, "learner_id"),
    ]


def test_bad_records_are_refused_with_a_json_error_and_change_nothing(board):
    learner_id, token = join(board)
    before = get(board, "/api/board").json()
    version = board.store.version
    for what, kwargs, status, word in _bad_bodies(learner_id):
        headers = {**bearer(token), **kwargs.pop("headers", {})}
        response = requests.post(f"{board.url}/api/records", headers=headers, timeout=5, **kwargs)
        assert response.status_code == status, (what, response.text)
        assert word in assert_refused(response, status), what
    assert board.store.record_count() == 0
    assert board.store.version == version
    assert get(board, "/api/board").json() == before


def test_unknown_paths_and_methods_answer_json(board):
    assert_refused(requests.get(f"{board.url}/api/nothing/<script>", timeout=5), 404)
    response = requests.get(f"{board.url}/api/records", timeout=5)
    assert_refused(response, 405)
    assert "POST" in response.headers["Allow"]
    assert requests.get(f"{board.url}/health", timeout=5).json() == {"ok": True}


def test_names_are_text_on_the_page_never_markup(board):
    name = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    join(board, name)
    page = requests.get(f"{board.url}/", timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<script>alert" not in page.text and "onerror" not in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    script = requests.get(f"{board.url}/board.js", timeout=5).text
    assert "textContent" in script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "history.replaceState" in script and "/api/session" in script and "EventSource" in script
    data = get(board, "/api/board")
    assert data.headers["Content-Type"].startswith("application/json")
    assert data.headers["X-Content-Type-Options"] == "nosniff"
    assert data.json()["learners"][0]["name"] == name


def test_a_spreadsheet_does_not_run_a_name_from_the_csv_export(board):
    learner_id, token = join(board, '=HYPERLINK("http://evil.example","click")')
    send(board, token, record(learner_id))
    rows = list(csv.reader(io.StringIO(get(board, "/api/export.csv").text)))
    assert rows[1][-1].startswith("'=")
    assert exported(board)[0]["name"].startswith("=")       # the JSON keeps it as it is


# Rate limits.

def test_requests_past_a_tokens_rate_answer_429_with_retry_after(tmp_path):
    with start_board(tmp_path / "board.db", limits=Limits(token_rate=0.5, token_burst=3)) as limited:
        _, token = join(limited)
        _, other = join(limited, "Bob")
        answers = [get(limited, "/api/board", token) for _ in range(4)]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
        assert_refused(answers[-1], 429)
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert get(limited, "/api/board", other).status_code == 200     # each token has its own bucket


def test_joins_past_an_addresss_rate_answer_429(tmp_path):
    with start_board(tmp_path / "board.db", limits=Limits(join_rate=0.1, join_burst=2)) as limited:
        join(limited, "One")
        join(limited, "Two")
        response = requests.post(f"{limited.url}/api/join", json={"code": limited.code, "name": "Three"}, timeout=5)
        assert_refused(response, 429)
        assert int(response.headers["Retry-After"]) >= 1
        assert len(limited.store.learners()) == 2


# Live events.

class EventReader:
    """An open /api/events stream on a socket of its own, as a browser's EventSource holds one."""

    UPDATE = re.compile(rb'event: update\ndata: \{"version": (\d+)\}\n\n')

    def __init__(self, board, headers: dict):
        self.sock = socket.create_connection((board.host, board.port), timeout=5)
        request = ["GET /api/events HTTP/1.1", f"Host: {board.host}:{board.port}", "Accept: text/event-stream",
                   *(f"{name}: {value}" for name, value in headers.items())]
        self.sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.headers = {line.partition(b":")[0].decode().lower(): line.partition(b":")[2].decode().strip()
                        for line in head.split(b"\r\n")[1:]}

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the board closed the stream")
        self.buffer += data

    def next_version(self, timeout: float = 5.0) -> int:
        """The version of the next update event, waiting at most ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while not (match := self.UPDATE.search(self.buffer)):
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self._receive()
        self.buffer = self.buffer[match.end():]
        return int(match[1])

    def rest(self, timeout: float = 3.0) -> bytes:
        """Everything until the board closes the stream."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._receive()
        except EOFError:
            return self.buffer

    def close(self) -> None:
        self.sock.close()


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def test_an_update_event_arrives_when_a_record_is_stored(board):
    learner_id, token = join(board)
    reader = EventReader(board, bearer(board.instructor_token))
    assert reader.status == 200 and reader.headers["content-type"].startswith("text/event-stream")
    first = reader.next_version()
    send(board, token, record(learner_id))
    assert reader.next_version(timeout=5) > first
    reader.close()


def test_the_page_gets_events_with_its_cookie(board):
    signed_in = requests.post(f"{board.url}/api/session", json={"token": board.instructor_token}, timeout=5)
    reader = EventReader(board, {"Cookie": f"tq_class={signed_in.cookies['tq_class']}"})
    first = reader.next_version()
    join(board, "Newcomer")
    assert reader.next_version() > first
    reader.close()


def test_open_streams_hold_no_worker_thread_and_end_when_their_clients_go(board):
    learner_id, token = join(board)
    readers = [EventReader(board, bearer(board.instructor_token)) for _ in range(30)]   # > the 8 threads
    versions = [reader.next_version() for reader in readers]
    wait_for(lambda: board.open_streams() == 30)    # (a stream is counted just after its first event)
    started = time.monotonic()
    assert get(board, "/api/board").status_code == 200
    assert time.monotonic() - started < 2
    send(board, token, record(learner_id))
    assert all(reader.next_version() > version for reader, version in zip(readers, versions))
    for reader in readers:
        reader.close()
    wait_for(lambda: board.open_streams() == 0)


def test_streams_past_the_limit_are_refused(tmp_path):
    with start_board(tmp_path / "board.db", limits=Limits(max_streams=2)) as limited:
        readers = [EventReader(limited, bearer(limited.instructor_token)) for _ in range(2)]
        for reader in readers:
            reader.next_version()
        response = get(limited, "/api/events")
        assert_refused(response, 503)
        assert response.headers["Retry-After"]
        for reader in readers:
            reader.close()


def test_stopping_the_board_ends_its_streams(tmp_path):
    running = start_board(tmp_path / "board.db")
    reader = EventReader(running, bearer(running.instructor_token))
    reader.next_version()
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 3
    assert reader.rest().endswith(b"0\r\n\r\n")     # the last chunk: a clean end, not a cut


# The board's data.

def test_the_board_shows_passes_the_stuck_property_the_race_and_who_is_idle(board):
    now = time.time_ns()
    minute = 60 * 1_000_000_000
    ada, ada_token = join(board, "Ada")
    bob, bob_token = join(board, "Bob")
    cy, cy_token = join(board, "Cy")
    dee, dee_token = join(board, "Dee")
    send(board, ada_token, {"records": [
        record(ada, "04", "failed", 1, prop="test_span_has_a_parent", at_ns=now - 3 * minute),
        record(ada, "04", "failed", 2, prop="test_context_crosses_the_hop", hint="Call inject().", at_ns=now - minute),
        record(ada, "03", "passed", 1, at_ns=now - 2 * minute)]})
    send(board, bob_token, {"records": [
        record(bob, "04", "failed", 1, at_ns=now - 30 * minute),
        record(bob, "04", "passed", 2, at_ns=now - 25 * minute),
        record(bob, "04", "failed", 3, at_ns=now - 20 * minute)]})       # a later failure undoes nothing
    send(board, cy_token, {"records": [
        record(cy, "04", "failed", 1, prop="test_context_crosses_the_hop", hint="Call inject().", at_ns=now),
        record(cy, "03", "passed", 4, at_ns=now - minute)]})
    send(board, dee_token, record(dee, "04", "failed", 1, prop="test_span_has_a_parent", at_ns=now))

    data = get(board, "/api/board?idle=15").json()
    rows = {learner["name"]: learner for learner in data["learners"]}
    assert [learner["name"] for learner in data["learners"]] == ["Ada", "Bob", "Cy", "Dee"]
    assert rows["Ada"]["cells"]["04"] == {"state": "failed", "attempts": 2,
                                          "property": "test_context_crosses_the_hop", "hint": "Call inject()."}
    assert rows["Bob"]["cells"]["04"] == {"state": "passed", "attempts": 3, "property": "", "hint": ""}
    assert rows["Bob"]["cells"]["01"] == {"state": "none", "attempts": 0, "property": "", "hint": ""}
    assert set(rows["Ada"]["cells"]) == {quest["id"] for quest in data["quests"]}
    assert data["per_quest"]["04"] == {"done": 1, "tried": 4, "stuck": {
        "property": "test_context_crosses_the_hop", "hint": "Call inject().", "learners": 2}}
    assert data["per_quest"]["01"] == {"done": 0, "tried": 0, "stuck": None}
    assert [(entry["place"], entry["name"]) for entry in data["mystery_race"]] == [(1, "Ada"), (2, "Cy")]
    assert data["mystery_race"][0]["at"] == rfc3339_ms(now - 2 * minute)
    assert [name for name, row in rows.items() if row["idle"]] == ["Bob"]
    assert data["idle_minutes"] == 15
    assert rows["Bob"]["last_seen"] == rfc3339_ms(now - 20 * minute)
    assert get(board, "/api/board").json()["idle_minutes"] == 10
    for bad in ("0", "241", "ten", "-5"):
        assert_refused(get(board, f"/api/board?idle={bad}"), 400)


# The roster, removing a learner, resetting the class.

ROSTER = ("identifier,github_username,github_id,name\r\n"
          "stu-001,octocat,583231,The Octocat\r\n"
          ",,,Grace Hopper\r\n")


def post_roster(board, text: str, content_type: str = "text/csv") -> requests.Response:
    return requests.post(f"{board.url}/api/roster", data=text.encode(), timeout=5,
                         headers={**bearer(board.instructor_token), "Content-Type": content_type})


def test_a_roster_imported_as_csv_is_claimed_by_joins_and_exported(board):
    assert post_roster(board, ROSTER).json() == {"created": 2, "matched": 0}
    octocat, octo_token = join(board, "Mona", github_username="OctoCat")
    assert octocat == "stu-001"
    grace, grace_token = join(board, "grace  hopper")
    newcomer, _ = join(board, "Alan Turing")
    send(board, octo_token, record(octocat))

    rows = list(csv.DictReader(io.StringIO(get(board, "/api/roster.csv").text)))
    assert list(rows[0]) == ["identifier", "github_username", "github_id", "name"]
    assert [(row["identifier"], row["github_username"], row["github_id"], row["name"]) for row in rows] == [
        ("stu-001", "octocat", "583231", "The Octocat"), (grace, "", "", "Grace Hopper"), (newcomer, "", "", "Alan Turing")]
    [exported_row] = list(csv.DictReader(io.StringIO(get(board, "/api/export.csv").text)))
    assert exported_row["name"] == "The Octocat" and exported_row["learner_id"] == "stu-001"

    # The same roster again adds nobody; a bad roster adds nothing at all.
    assert post_roster(board, ROSTER).json() == {"created": 0, "matched": 2}
    for text, status in ((ROSTER + "stu-9,,notanumber,Zed\r\n", 400), ("colour\r\nred\r\n", 400),
                         (ROSTER.replace("Grace", "Gr\x07ace"), 400)):
        assert_refused(post_roster(board, text), status)
    assert_refused(post_roster(board, ROSTER, "application/json"), 415)
    assert len(board.store.learners()) == 3


def test_removing_a_learner_takes_them_off_the_board_and_stops_their_token(board):
    ada, ada_token = join(board, "Ada")
    bob, bob_token = join(board, "Bob")
    send(board, ada_token, record(ada))
    send(board, bob_token, record(bob))
    response = requests.post(f"{board.url}/api/learners/{ada}/remove", headers=bearer(board.instructor_token),
                             timeout=5)
    assert response.json() == {"removed": ada, "records_deleted": 1}
    assert [learner["id"] for learner in get(board, "/api/board").json()["learners"]] == [bob]
    assert [row["learner_id"] for row in exported(board)] == [bob]
    assert_refused(send(board, ada_token, record(ada)), 403)
    assert_refused(get(board, "/api/board", ada_token), 403)
    again = requests.post(f"{board.url}/api/learners/{ada}/remove", headers=bearer(board.instructor_token), timeout=5)
    assert_refused(again, 404)


def test_reset_deletes_every_record_and_keeps_the_learners(board):
    ada, ada_token = join(board, "Ada")
    send(board, ada_token, {"records": [record(ada), record(ada, "03", "passed")]})
    response = requests.post(f"{board.url}/api/reset", headers=bearer(board.instructor_token), timeout=5)
    assert response.json() == {"deleted": 2}
    data = get(board, "/api/board").json()
    assert exported(board) == [] and data["mystery_race"] == []
    assert data["learners"][0]["cells"]["04"]["state"] == "none"
    assert send(board, ada_token, record(ada)).json() == {"stored": 1, "duplicates": 0}


# Restarts.

def test_a_restarted_board_keeps_its_class_records_and_instructor_token(tmp_path):
    path = tmp_path / "board.db"
    with start_board(path) as first:
        learner_id, token = join(first)
        sent = [record(learner_id, attempt=n) for n in range(1, 4)]
        send(first, token, {"records": sent})
        code, instructor_token = first.code, first.instructor_token
        assert first.created
    with start_board(path) as second:
        assert (second.code, second.instructor_token, second.created) == (code, instructor_token, False)
        assert {row["attempt_id"] for row in exported(second)} == {r["attempt_id"] for r in sent}
        assert send(second, token, sent[0]).json() == {"stored": 0, "duplicates": 1}


def test_a_board_killed_with_sigkill_keeps_every_acknowledged_record(tmp_path):
    path, port = tmp_path / "class" / "board.db", free_port()
    program = ("import sys; from tracequest.classroom.server import serve; "
               "serve(sys.argv[1], port=int(sys.argv[2]), out=lambda line: print(line, flush=True))")
    process = subprocess.Popen([sys.executable, "-c", program, str(path), str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the board did not start"
            time.sleep(0.1)
        instructor_token = token_file(path).read_text().strip()
        info = requests.get(f"{url}/api/board", headers=bearer(instructor_token), timeout=5).json()
        response = requests.post(f"{url}/api/join", json={"code": info["class"]["code_hint"], "name": "Ada"},
                                 timeout=5).json()
        acknowledged = []
        for attempt in range(1, 21):
            sent = record(response["learner_id"], attempt=attempt)
            answer = requests.post(f"{url}/api/records", json=sent, headers=bearer(response["token"]), timeout=5)
            assert answer.json() == {"stored": 1, "duplicates": 0}
            acknowledged.append(sent["attempt_id"])
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    with start_board(path) as restarted:
        assert restarted.instructor_token == instructor_token and not restarted.token_renewed
        assert [row["attempt_id"] for row in exported(restarted)] == acknowledged


def test_a_lost_instructor_token_file_gives_a_new_token(tmp_path):
    path = tmp_path / "board.db"
    with start_board(path) as first:
        old = first.instructor_token
    token_file(path).unlink()
    with start_board(path) as second:
        assert second.token_renewed and second.instructor_token != old
        assert_refused(get(second, "/api/board", old), 401)
        assert get(second, "/api/board").status_code == 200
        assert token_file(path).read_text().strip() == second.instructor_token


def test_two_classes_served_from_one_folder_keep_their_own_instructor_links(tmp_path):
    with start_board(tmp_path / "monday.db") as monday:
        link_token = monday.instructor_token
    with start_board(tmp_path / "tuesday.db") as tuesday:
        assert tuesday.instructor_token != link_token
    with start_board(tmp_path / "monday.db") as again:
        assert not again.token_renewed, "starting tuesday.db replaced monday.db's saved instructor token"
        assert get(again, "/api/board", link_token).status_code == 200


# The store's schema.

def test_migrations_run_once_in_order_and_the_store_is_in_wal_mode(tmp_path):
    path = tmp_path / "board.db"
    store = BoardStore(path)
    assert store.schema_version == len(migrations()) >= 1
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {len(migrations()) + 1}")
    db.commit()
    db.close()
    with pytest.raises(ClassError, match="newer"):
        BoardStore(path)


def test_a_failing_migration_changes_nothing(tmp_path):
    db = sqlite3.connect(tmp_path / "scratch.db", isolation_level=None)
    broken = [Migration(1, "0001_init.sql", "CREATE TABLE first (x);\nCREATE TABLE first (x);\n")]
    with pytest.raises(ClassError, match="0001_init.sql"):
        migrate(db, broken)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
    assert migrate(db, [Migration(1, "0001_init.sql", "CREATE TABLE first (x);")]) == 1
    assert migrate(db, [Migration(1, "0001_init.sql", "CREATE TABLE first (x);")]) == 1   # not again


# What serve prints.

def test_serve_prints_the_code_the_join_command_and_the_instructor_link(tmp_path):
    lines: list[str] = []
    stop = threading.Event()
    port = free_port()
    thread = threading.Thread(target=serve, args=(tmp_path / "board.db",),
                              kwargs={"port": port, "out": lines.append, "stop": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not any("Ctrl-C" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        text = "\n".join(lines)
        token = token_file(tmp_path / "board.db").read_text().strip()
        code = BoardStore(tmp_path / "board.db").class_info().code
        assert code.startswith("TRACE-") and len(code) == 10
        assert not set(code[6:]) & set("0O1IL")
        assert f'tracequest class join http://127.0.0.1:{port} {code} --name "Your Name"' in text
        assert f"http://127.0.0.1:{port}/#instructor={token}" in text
        assert "Only this machine" in text and "Warning" not in text
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).ok
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert "stopped" in lines[-1]


def test_on_an_open_network_the_banner_warns_and_gives_the_machines_address(board, monkeypatch):
    monkeypatch.setattr("tracequest.classroom.server.machine_address", lambda: "192.0.2.44")
    text = "\n".join(banner(board, "0.0.0.0"))
    assert "anyone on this network can reach the board; share the code only with your class" in text
    assert f"tracequest class join http://192.0.2.44:{board.port} {board.code}" in text
    assert f"http://127.0.0.1:{board.port}/#instructor=" in text    # the instructor's own link stays local
