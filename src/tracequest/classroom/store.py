"""The class board's store: one SQLite file with the class, its learners and their records.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit is in the WAL file
when it returns, so a board killed with ``kill -9`` and started again still has
every record it acknowledged (a power cut may lose the last moments; a workshop
board can live with that), and readers never wait for the writer.

One connection behind one lock serves every server thread: each call is a few
short statements, and SQLite lets one writer in at a time anyway. The board
reads one summary row per learner and quest (table ``cells``, updated in the
same transaction as each record), never every record, and keeps the board's
data until something changes (:attr:`BoardStore.version`).

Tokens never reach this module: it keeps and looks up their SHA-256
(:func:`tracequest.classroom.auth.hash_token`), and compares them with
:func:`hmac.compare_digest`.

Around it: the schema and its migrations are :mod:`tracequest.classroom.schema`,
what the board shows is computed by :mod:`tracequest.classroom.board_view`, and
a roster CSV is read by :mod:`tracequest.classroom.roster`.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tracequest.classroom.board_view import board_data, read_snapshot, rfc3339_ms
from tracequest.classroom.records import FIELDS, ClassError
from tracequest.classroom.schema import migrate
from tracequest.quests.registry import all_quests
from tracequest.traces.timefmt import parse_rfc3339

#: A class admits at most this many learners (joined or from a roster), so a flood of
#: joins cannot grow the board without bound.
MAX_LEARNERS = 2000


@dataclass(frozen=True)
class ClassInfo:
    code: str
    instructor_token_hash: str
    created_at: str
    started_ns: int
    closed: bool

    def is_instructor(self, token_hash: str) -> bool:
        return hmac.compare_digest(self.instructor_token_hash, token_hash)


@dataclass(frozen=True)
class Learner:
    id: str
    name: str
    github_username: str
    github_id: str
    joined: bool
    removed: bool


_CELL_UPSERT = """
INSERT INTO cells (learner_id, quest, attempts, passed_ns, latest_attempt, latest_at_ns,
                   latest_verdict, latest_property, latest_hint, last_ns)
VALUES (:learner_id, :quest, 1, :passed_ns, :attempt, :at_ns, :verdict, :property, :hint, :seen_ns)
ON CONFLICT (learner_id, quest) DO UPDATE SET
    attempts = attempts + 1,
    passed_ns = CASE WHEN excluded.passed_ns IS NULL THEN passed_ns
                     WHEN passed_ns IS NULL THEN excluded.passed_ns
                     ELSE min(passed_ns, excluded.passed_ns) END,
    latest_attempt = CASE WHEN (excluded.latest_attempt, excluded.latest_at_ns) >= (latest_attempt, latest_at_ns)
                          THEN excluded.latest_attempt ELSE latest_attempt END,
    latest_at_ns = CASE WHEN (excluded.latest_attempt, excluded.latest_at_ns) >= (latest_attempt, latest_at_ns)
                        THEN excluded.latest_at_ns ELSE latest_at_ns END,
    latest_verdict = CASE WHEN (excluded.latest_attempt, excluded.latest_at_ns) >= (latest_attempt, latest_at_ns)
                          THEN excluded.latest_verdict ELSE latest_verdict END,
    latest_property = CASE WHEN (excluded.latest_attempt, excluded.latest_at_ns) >= (latest_attempt, latest_at_ns)
                           THEN excluded.latest_property ELSE latest_property END,
    latest_hint = CASE WHEN (excluded.latest_attempt, excluded.latest_at_ns) >= (latest_attempt, latest_at_ns)
                       THEN excluded.latest_hint ELSE latest_hint END,
    last_ns = max(last_ns, excluded.last_ns)
"""
# (SQLite evaluates every SET expression against the row as it was, so the order above does not matter.)


class BoardStore:
    """The class board's SQLite file; every method is safe to call from any thread."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Learners' names are in it: readable by the instructor's account only. SQLite
            # gives its -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self.schema_version = migrate(self._db)
        except BaseException:
            self._db.close()
            raise
        self._version = 0
        self._snapshot: tuple[int, dict] | None = None
        self._quests = tuple((quest.id, quest.title) for quest in all_quests())

    @property
    def version(self) -> int:
        """A number that grows with every change since this store was opened (the board's events carry it)."""
        return self._version

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is stored, or none of it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _changed(self) -> None:
        self._version += 1

    def _query(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # The class.

    def class_info(self) -> ClassInfo | None:
        rows = self._query("SELECT code, instructor_token_hash, created_at, started_ns, closed FROM class")
        if not rows:
            return None
        code, token_hash, created_at, started_ns, closed = rows[0]
        return ClassInfo(code, token_hash, created_at, started_ns, bool(closed))

    def create_class(self, code: str, instructor_token_hash: str, now_ns: int | None = None) -> ClassInfo:
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._writing() as db:
            if db.execute("SELECT 1 FROM class").fetchone():
                raise ClassError("this board already has a class")
            db.execute("INSERT INTO class (id, code, instructor_token_hash, created_at, started_ns) "
                       "VALUES (1, ?, ?, ?, ?)", (code, instructor_token_hash, rfc3339_ms(now_ns), now_ns))
            self._changed()
        return self.class_info()

    def set_instructor_token_hash(self, token_hash: str) -> None:
        """A new instructor token replaces the old one (when the saved token is lost)."""
        with self._writing() as db:
            db.execute("UPDATE class SET instructor_token_hash = ?", (token_hash,))

    def close_class(self) -> None:
        """No more joins and no more records; the board stays readable and exportable."""
        with self._writing() as db:
            db.execute("UPDATE class SET closed = 1")
            self._changed()

    # Learners.

    def learner_by_token_hash(self, token_hash: str) -> Learner | None:
        rows = self._query("SELECT id, name, github_username, github_id, token_hash, removed FROM learners "
                           "WHERE token_hash = ?", (token_hash,))
        if not rows or not hmac.compare_digest(rows[0][4], token_hash):
            return None
        learner_id, name, github_username, github_id, _, removed = rows[0]
        return Learner(learner_id, name, github_username, github_id, True, bool(removed))

    def learners(self) -> list[dict]:
        """Every learner not removed, joined or waiting on the roster, in join or import order."""
        rows = self._query("SELECT id, name, github_username, github_id, joined_at FROM learners "
                           "WHERE removed = 0 ORDER BY seq")
        return [{"id": learner_id, "name": name, "github_username": github_username, "github_id": github_id,
                 "joined_at": joined_at} for learner_id, name, github_username, github_id, joined_at in rows]

    def join(self, name: str, github_username: str, token_hash: str, now_ns: int | None = None) -> str:
        """Admit a learner and return their id.

        A roster entry no join has claimed yet, with the same GitHub user name
        (first) or the same name (ignoring case and spacing), becomes theirs;
        otherwise they are a new learner. ``name`` and ``github_username`` are
        already cleaned (:func:`clean_name`).
        """
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._writing() as db:
            unclaimed = db.execute("SELECT id, name, github_username FROM learners "
                                   "WHERE token_hash IS NULL AND removed = 0 ORDER BY seq").fetchall()
            claimed = None
            if github_username:
                claimed = next((row for row in unclaimed if row[2].casefold() == github_username.casefold()), None)
            if claimed is None:
                claimed = next((row for row in unclaimed if _name_key(row[1]) == _name_key(name)), None)
            if claimed is not None:
                learner_id = claimed[0]
                db.execute("UPDATE learners SET token_hash = ?, joined_at = ?, "
                           "github_username = CASE WHEN github_username = '' THEN ? ELSE github_username END "
                           "WHERE id = ?", (token_hash, rfc3339_ms(now_ns), github_username, learner_id))
            else:
                self._check_room(db, 1)
                learner_id = _new_learner_id(db)
                db.execute("INSERT INTO learners (id, name, github_username, token_hash, joined_at) "
                           "VALUES (?, ?, ?, ?, ?)", (learner_id, name, github_username, token_hash,
                                                       rfc3339_ms(now_ns)))
            self._changed()
        return learner_id

    @staticmethod
    def _check_room(db: sqlite3.Connection, more: int) -> None:
        count = db.execute("SELECT count(*) FROM learners WHERE removed = 0").fetchone()[0]
        if count + more > MAX_LEARNERS:
            raise ClassFull(f"the class is full ({MAX_LEARNERS} learners)")

    def remove_learner(self, learner_id: str) -> int | None:
        """Take a learner off the board with their records; their token stops working.

        The number of their records deleted, or None when there is no such learner.
        """
        with self._writing() as db:
            if not db.execute("SELECT 1 FROM learners WHERE id = ? AND removed = 0", (learner_id,)).fetchone():
                return None
            deleted = db.execute("DELETE FROM records WHERE learner_id = ?", (learner_id,)).rowcount
            db.execute("DELETE FROM cells WHERE learner_id = ?", (learner_id,))
            db.execute("UPDATE learners SET removed = 1 WHERE id = ?", (learner_id,))
            self._changed()
        return deleted

    def roster(self) -> list[dict]:
        """The roster in GitHub Classroom's columns (identifier = learner_id), in join or import order."""
        return [{"identifier": learner["id"], "github_username": learner["github_username"],
                 "github_id": learner["github_id"], "name": learner["name"]} for learner in self.learners()]

    def import_roster(self, entries: list[dict]) -> dict:
        """Add roster entries (from ``roster.parse_roster_csv``) that joins can claim; what happened.

        An entry that matches a learner already here (same identifier, else the
        same GitHub user name, else the same name) fills in that learner's
        GitHub fields instead of adding someone: learners keep their ids.
        """
        created = matched = 0
        with self._writing() as db:
            rows = db.execute("SELECT id, name, github_username, github_id FROM learners "
                              "WHERE removed = 0 ORDER BY seq").fetchall()
            by_id = {row[0]: row for row in rows}
            taken: set[str] = set()
            new = []
            for entry in entries:
                match = by_id.get(entry["identifier"]) if entry["identifier"] else None
                if match is None and entry["github_username"]:
                    match = next((row for row in rows if row[0] not in taken
                                  and row[2].casefold() == entry["github_username"].casefold()), None)
                if match is None:
                    match = next((row for row in rows if row[0] not in taken
                                  and _name_key(row[1]) == _name_key(entry["name"])), None)
                if match is not None and match[0] not in taken:
                    taken.add(match[0])
                    matched += 1
                    db.execute("UPDATE learners SET "
                               "github_username = CASE WHEN github_username = '' THEN ? ELSE github_username END, "
                               "github_id = CASE WHEN github_id = '' THEN ? ELSE github_id END WHERE id = ?",
                               (entry["github_username"], entry["github_id"], match[0]))
                else:
                    new.append(entry)
            self._check_room(db, len(new))
            for entry in new:
                learner_id = entry["identifier"]
                if not learner_id or db.execute("SELECT 1 FROM learners WHERE id = ?", (learner_id,)).fetchone():
                    learner_id = _new_learner_id(db)
                db.execute("INSERT INTO learners (id, name, github_username, github_id) VALUES (?, ?, ?, ?)",
                           (learner_id, entry["name"], entry["github_username"], entry["github_id"]))
                created += 1
            self._changed()
        return {"created": created, "matched": matched}

    # Records.

    def add_records(self, records: list[dict], received_ns: int | None = None) -> tuple[int, int]:
        """Store validated records in one transaction; (stored, duplicates).

        A record whose attempt_id is already here is a duplicate and changes
        nothing. A record's time on the board is its ``at``, never later than
        its arrival (a learner's clock may run fast).
        """
        received_ns = time.time_ns() if received_ns is None else received_ns
        received_at = rfc3339_ms(received_ns)
        stored = 0
        with self._writing() as db:
            for record in records:
                at_ns = parse_rfc3339(record["at"])
                inserted = db.execute(
                    f"INSERT OR IGNORE INTO records ({', '.join(FIELDS)}, at_ns, received_at, received_ns) "
                    f"VALUES ({', '.join('?' * len(FIELDS))}, ?, ?, ?)",
                    (*(record[name] for name in FIELDS), at_ns, received_at, received_ns)).rowcount
                if not inserted:
                    continue
                stored += 1
                seen_ns = min(at_ns, received_ns)
                db.execute(_CELL_UPSERT, {
                    "learner_id": record["learner_id"], "quest": record["quest"],
                    "passed_ns": seen_ns if record["verdict"] == "passed" else None,
                    "attempt": record["attempt"], "at_ns": at_ns, "verdict": record["verdict"],
                    "property": record["property"], "hint": record["hint"], "seen_ns": seen_ns})
            if stored:
                self._changed()
        return stored, len(records) - stored

    def record_count(self) -> int:
        return self._query("SELECT count(*) FROM records")[0][0]

    def export_records(self) -> list[dict]:
        """Every record in arrival order: the record's fields, the learner's name, and received_at."""
        columns = ", ".join(f"r.{name}" for name in FIELDS)
        rows = self._query(f"SELECT {columns}, l.name, r.received_at FROM records r "
                           f"JOIN learners l ON l.id = r.learner_id ORDER BY r.rowid")
        return [dict(zip((*FIELDS, "name", "received_at"), row)) for row in rows]

    def reset(self, now_ns: int | None = None) -> int:
        """Delete every record and restart the mystery race's clock; learners stay. How many went."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._writing() as db:
            deleted = db.execute("DELETE FROM records").rowcount
            db.execute("DELETE FROM cells")
            db.execute("UPDATE class SET started_ns = ?", (now_ns,))
            self._changed()
        return deleted

    # The board (what it shows is computed in board_view.py).

    def board(self, idle_minutes: int = 10, learner_id: str | None = None, now_ns: int | None = None) -> dict:
        """The board's data (the shape of GET /api/board); with ``learner_id``, only that learner's row.

        The class-level counts (done, tried, stuck) stay the whole class's; the
        mystery race keeps only that learner's own entry.
        """
        now_ns = time.time_ns() if now_ns is None else now_ns
        return board_data(self._current_snapshot(), self._quests, idle_minutes, learner_id, now_ns)

    def _current_snapshot(self) -> dict:
        with self._lock:
            version = self._version
            if self._snapshot is None or self._snapshot[0] != version:
                self._snapshot = (version, read_snapshot(self._db, self._quests))
            return self._snapshot[1]


class ClassFull(ClassError):
    """The class has MAX_LEARNERS learners already."""


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


def _new_learner_id(db: sqlite3.Connection) -> str:
    while True:
        learner_id = secrets.token_hex(8)
        if not db.execute("SELECT 1 FROM learners WHERE id = ?", (learner_id,)).fetchone():
            return learner_id
