"""The class board under a workshop's load: learners reporting at once while the instructor's page reads it.

The board runs in its own process, as `tracequest class serve` does
(waitress, SQLite in WAL mode on disk), on 127.0.0.1. 300 learners join it
through the HTTP API from one address, as a room behind one NAT does, then
report checks from 32 threads for a fixed time: each check is the learner's
current quest (failing, with its property and hint, until it passes, then the
next quest), sometimes with an earlier quest checked again; one check in
twenty is sent a second time, as after an answer lost on the way back. While
they report, a separate process reads GET /api/board every 0.1 s with the
instructor's token, as the board's page does on each update, and times it.

At the end the instructor's export must hold every record exactly once:
loss (sent - stored) and duplicates are printed, and the script exits 1 if
either is not 0 or the board left a request unanswered. Run:
`python benchmarks/class_board_load.py` (about 70 s; --seconds to change).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tracequest.classroom.client import now_rfc3339
from tracequest.classroom.server import token_file
from tracequest.host.ports import free_port

LEARNERS = 300
WORKERS = 32
SECONDS = 60
POLL_INTERVAL_S = 0.1      # the instructor's page: well inside its token's 20 requests/s
RESEND_EVERY = 20          # one check in this many goes twice
BOARD_PROGRAM = ("import sys; from tracequest.classroom.server import Limits, serve; "
                 "serve(sys.argv[1], port=int(sys.argv[2]), out=lambda line: None, "
                 "limits=Limits(join_rate=1000.0, join_burst=1000))")

# The quests in a workshop's order, each with the check that fails most and the first line of its hint.
QUESTS = [
    ("01", "test_the_eta_service_sends_a_named_trace", "every span must carry service.name = eta."),
    ("02", "test_compute_fare_has_its_own_span", "wrap the fare computation in a span of its own."),
    ("04", "test_one_trace_spans_both_services", "the traceparent header is missing: inject() it."),
    ("03", "test_your_answer_names_the_operation_that_holds_the_time", "look at the longest span's children."),
    ("05", "test_a_failed_redis_call_is_recorded_as_an_error", "record the exception and set the span's status."),
    ("08", "test_baggage_carries_the_customer_to_the_third_service", "baggage travels only if it is propagated."),
]


class Learner:
    """One learner's progress: the quest they are on and how often they have checked each."""

    def __init__(self, learner_id: str, token: str, rng: random.Random):
        self.id, self.token, self.rng = learner_id, token, rng
        self.current = 0
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()

    def check(self) -> list[dict]:
        """The records of this learner's next `tracequest check`."""
        with self.lock:
            quest, prop, hint = QUESTS[self.current]
            passed = self.rng.random() < 0.4
            records = [self._record(quest, passed, prop, hint)]
            if self.current and self.rng.random() < 0.3:   # an earlier quest checked again
                earlier = QUESTS[self.rng.randrange(self.current)][0]
                records.append(self._record(earlier, True, "", ""))
            if passed:
                self.current = (self.current + 1) % len(QUESTS)
            return records

    def _record(self, quest: str, passed: bool, prop: str, hint: str) -> dict:
        self.attempts[quest] += 1
        return {"attempt_id": uuid.uuid4().hex, "learner_id": self.id, "quest": quest,
                "verdict": "passed" if passed else "failed", "property": "" if passed else prop,
                "hint": "" if passed else hint, "attempt": self.attempts[quest],
                "duration_s": round(self.rng.uniform(0.5, 40.0), 3), "tool_version": "0.1.0",
                "at": now_rfc3339()}


def poll(url: str, token: str, stop, out) -> None:
    """The instructor's page, in its own process: GET /api/board until ``stop``; (status, seconds) each."""
    answers = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = session.get(f"{url}/api/board", timeout=30)
                status = response.status_code
                learners = len(response.json()["learners"]) if status == 200 else 0
            except (requests.RequestException, ValueError) as exc:
                status, learners = type(exc).__name__, 0
            answers.append((status, time.perf_counter() - started, learners))
            stop.wait(POLL_INTERVAL_S)
    out.put(answers)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def start_board(db: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", BOARD_PROGRAM, str(db), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the board did not start: {process.stderr.read()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return process
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the board did not answer within 30 s")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=LEARNERS)
    parser.add_argument("--workers", type=int, default=WORKERS, help="client threads sending at once")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="how long the learners report")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db, port = Path(tmp) / "class" / "board.db", free_port()
        url = f"http://127.0.0.1:{port}"
        board = start_board(db, port)
        try:
            return run(args, url, token_file(db).read_text().strip())
        finally:
            board.terminate()
            board.wait(timeout=30)


def run(args, url: str, instructor_token: str) -> int:
    instructor = {"Authorization": f"Bearer {instructor_token}"}
    code = requests.get(f"{url}/api/board", headers=instructor, timeout=10).json()["class"]["code_hint"]
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def join(index: int) -> Learner:
        response = session().post(f"{url}/api/join", json={"code": code, "name": f"Learner {index:03d}"}, timeout=30)
        response.raise_for_status()
        data = response.json()
        return Learner(data["learner_id"], data["token"], random.Random(index))

    started = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        learners = list(pool.map(join, range(args.learners)))
    join_s = time.perf_counter() - started

    sent: list[str] = []            # every record's attempt_id, once
    counted = Counter()             # what the board's answers said: stored, duplicates
    failures = Counter()            # requests the board did not answer 200, by status
    requests_made = itertools.count()
    lock = threading.Lock()
    next_learner = itertools.cycle(learners)

    def post(learner: Learner, records: list[dict]) -> None:
        for attempt in range(5):   # as the client does: retry a busy or failed board
            next(requests_made)
            try:
                response = session().post(f"{url}/api/records", json={"records": records}, timeout=30,
                                          headers={"Authorization": f"Bearer {learner.token}"})
                status = response.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            if status == 200:
                answer = response.json()
                with lock:
                    counted.update(stored=answer["stored"], duplicates=answer["duplicates"])
                return
            with lock:
                failures[status] += 1
            time.sleep(0.2 * 2 ** attempt)

    def worker(deadline: float, number: int) -> None:
        checks = 0
        while time.perf_counter() < deadline:
            with lock:
                learner = next(next_learner)
            records = learner.check()
            with lock:
                sent.extend(record["attempt_id"] for record in records)
            post(learner, records)
            checks += 1
            if checks % RESEND_EVERY == number % RESEND_EVERY:   # the answer was lost: send it again
                post(learner, records)

    context = multiprocessing.get_context("spawn")
    stop, answers = context.Event(), context.Queue()
    poller = context.Process(target=poll, args=(url, instructor_token, stop, answers))
    poller.start()
    time.sleep(1.0)   # the poller's interpreter starts before the load does
    started = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        for future in [pool.submit(worker, started + args.seconds, n) for n in range(args.workers)]:
            future.result()
    elapsed = time.perf_counter() - started
    stop.set()
    polls = answers.get(timeout=60)
    poller.join(timeout=30)

    rows = requests.get(f"{url}/api/export.json", headers=instructor, timeout=120).json()["records"]
    stored_ids = Counter(row["attempt_id"] for row in rows)
    lost = len(set(sent) - set(stored_ids))
    duplicates = sum(count - 1 for count in stored_ids.values() if count > 1)
    strays = len(set(stored_ids) - set(sent))
    latencies = [seconds * 1000 for status, seconds, _ in polls if status == 200]
    unanswered = Counter(status for status, _, _ in polls if status != 200)

    print(f"class board: {args.learners} learners (joined in {join_s:.1f} s from one address), "
          f"{args.workers} client threads, {elapsed:.1f} s of checks; the board in its own process "
          f"(waitress, SQLite WAL on disk)")
    print(f"records: {len(sent):,} sent in {next(requests_made):,} requests "
          f"(1 or 2 records a check; one check in {RESEND_EVERY} sent twice)")
    print(f"rate: {len(sent) / elapsed:,.0f} records/s")
    if latencies:
        print(f"board data during the load (GET /api/board as the instructor, every {POLL_INTERVAL_S:g} s, "
              f"{max(n for _, _, n in polls)} learners): {len(polls)} requests, "
              f"p50 {statistics.median(latencies):.0f} ms, p95 {percentile(latencies, 95):.0f} ms, "
              f"max {max(latencies):.0f} ms, unanswered {sum(unanswered.values())}")
    print(f"stored: {len(stored_ids):,} of {len(sent):,} (loss {lost}), duplicates {duplicates}, "
          f"not sent but stored {strays}; the board counted {counted['duplicates']:,} resent records "
          f"as duplicates; failed requests: {sum(failures.values())}"
          + (f" ({dict(failures)})" if failures else ""))
    if unanswered:
        print(f"unanswered polls: {dict(unanswered)}")
    return 0 if not (lost or duplicates or strays or unanswered or not latencies) else 1


if __name__ == "__main__":
    sys.exit(main())
