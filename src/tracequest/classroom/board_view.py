"""What the class board shows: the data of ``GET /api/board``, computed from the store's summary rows.

The store (:mod:`tracequest.classroom.store`) writes and reads rows; this is
the one computation over them: each learner's cell per quest, how many are
done with each quest and what most of the others are stuck on, and the
mystery race. It lives apart from the store so that the board's rules read
in one place, without the SQL around them: :meth:`BoardStore.board` keeps
one :func:`read_snapshot` per store version and adds what depends on the
clock (:func:`board_data`). The board's times are :func:`rfc3339_ms` (the store
writes its own with it too).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter

from tracequest.traces.timefmt import parse_rfc3339

#: The quest whose first passes make the mystery race.
MYSTERY_QUEST = "03"


def rfc3339_ms(ns: int) -> str:
    """Unix nanoseconds as RFC 3339 UTC with milliseconds: 2026-12-04T18:40:00.123Z."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def read_snapshot(db: sqlite3.Connection, quests: tuple[tuple[str, str], ...]) -> dict:
    """Everything on the board that does not depend on the clock, read in one transaction.

    ``db`` is the store's connection (the caller holds its lock); ``quests``
    the (id, title) of every quest, in order.
    """
    db.execute("BEGIN")
    try:
        code, started_ns, closed = db.execute("SELECT code, started_ns, closed FROM class").fetchone()
        learners = db.execute("SELECT id, name, joined_at FROM learners WHERE removed = 0 ORDER BY seq").fetchall()
        cells = db.execute("SELECT c.learner_id, c.quest, c.attempts, c.passed_ns, c.latest_verdict, "
                           "c.latest_property, c.latest_hint, c.last_ns FROM cells c "
                           "JOIN learners l ON l.id = c.learner_id WHERE l.removed = 0").fetchall()
    finally:
        db.execute("COMMIT")
    quest_ids = [quest_id for quest_id, _ in quests]
    rows = {}
    for learner_id, name, joined_at in learners:
        rows[learner_id] = {"id": learner_id, "name": name, "last_ns": None,
                            "joined_ns": parse_rfc3339(joined_at) if joined_at else None,
                            "cells": {quest_id: {"state": "none", "attempts": 0, "property": "", "hint": ""}
                                      for quest_id in quest_ids}}
    per_quest = {quest_id: {"done": 0, "tried": 0, "stuck": None} for quest_id in quest_ids}
    stuck: dict[str, Counter] = {quest_id: Counter() for quest_id in quest_ids}
    race = []
    for learner_id, quest, attempts, passed_ns, verdict, prop, hint, last_ns in cells:
        row = rows[learner_id]
        row["last_ns"] = last_ns if row["last_ns"] is None else max(row["last_ns"], last_ns)
        if quest not in per_quest:      # a quest this Trace Quest no longer has
            continue
        passed = passed_ns is not None
        row["cells"][quest] = {"state": "passed" if passed else "failed", "attempts": attempts,
                               "property": "" if passed else prop, "hint": "" if passed else hint}
        per_quest[quest]["tried"] += 1
        if passed:
            per_quest[quest]["done"] += 1
            if quest == MYSTERY_QUEST:
                race.append((passed_ns, row["name"].casefold(), learner_id, row["name"]))
        elif verdict == "failed" and prop:
            stuck[quest][(prop, hint)] += 1
    for quest_id, counts in stuck.items():
        per_property = Counter()
        for (prop, _), learners_count in counts.items():
            per_property[prop] += learners_count
        if per_property:
            prop, learners_count = min(per_property.items(), key=lambda item: (-item[1], item[0]))
            hint = min(((h, n) for (p, h), n in counts.items() if p == prop),
                       key=lambda item: (-item[1], item[0]))[0]
            per_quest[quest_id]["stuck"] = {"property": prop, "hint": hint, "learners": learners_count}
    race.sort()
    mystery_race = [{"place": place, "learner_id": learner_id, "name": name, "at": rfc3339_ms(passed_ns),
                     "seconds_since_start": round(max(0, passed_ns - started_ns) / 1e9, 1)}
                    for place, (passed_ns, _, learner_id, name) in enumerate(race, start=1)]
    ordered = sorted(rows.values(), key=lambda row: row["name"].casefold())
    return {"code": code, "closed": bool(closed), "rows": ordered, "per_quest": per_quest,
            "race": mystery_race}


def board_data(snapshot: dict, quests: tuple[tuple[str, str], ...], idle_minutes: int, learner_id: str | None,
               now_ns: int) -> dict:
    """The board's data at ``now_ns`` from a :func:`read_snapshot` (what :meth:`BoardStore.board` answers)."""
    idle_ns = idle_minutes * 60 * 1_000_000_000
    learners = []
    for row in snapshot["rows"]:
        if learner_id is not None and row["id"] != learner_id:
            continue
        seen_ns = row["last_ns"] if row["last_ns"] is not None else row["joined_ns"]
        learners.append({"id": row["id"], "name": row["name"], "cells": row["cells"],
                         "last_seen": None if row["last_ns"] is None else rfc3339_ms(row["last_ns"]),
                         "idle": seen_ns is not None and now_ns - seen_ns > idle_ns,
                         "joined": row["joined_ns"] is not None})
    race = snapshot["race"]
    if learner_id is not None:
        race = [entry for entry in race if entry["learner_id"] == learner_id]
    code = snapshot["code"]
    return {"class": {"code_hint": code if learner_id is None else code[:-2] + "**",
                      "closed": snapshot["closed"]},
            "quests": [{"id": quest_id, "title": title} for quest_id, title in quests],
            "learners": learners, "per_quest": snapshot["per_quest"], "mystery_race": race,
            "idle_minutes": idle_minutes}
