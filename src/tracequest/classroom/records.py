"""The record a learner's check sends the class board, and the one validation both sides use.

A record says which quest was checked, how it ended, which property failed
and the first line of its hint; never code, file contents, environment
variables, paths or trace data (:data:`FIELDS` is the whole list, and the
board refuses any other key). ``attempt_id`` makes a record idempotent: sent
twice, it is stored once.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

from tracequest import __version__
from tracequest.errors import TraceQuestError
from tracequest.quests.registry import all_quests
from tracequest.quests.results import QuestResult
from tracequest.traces.timefmt import parse_rfc3339

#: Every field of a record, in order; nothing else is ever sent.
FIELDS = ("attempt_id", "learner_id", "quest", "verdict", "property", "hint", "attempt",
          "duration_s", "tool_version", "at")
VERDICTS = ("passed", "failed")
HINT_CHARS = 200
_LIMITS = {"learner_id": 64, "property": 120, "hint": HINT_CHARS, "tool_version": 40, "at": 40}
_ATTEMPT_ID = re.compile(r"[0-9a-f]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ClassError(TraceQuestError):
    """The class board refused something, or cannot be reached; the message says what."""


def failing_property(quest_result: QuestResult) -> str:
    """The test function of the quest's first failing check (``test_x`` of ``file.py::test_x[p]``)."""
    failure = quest_result.first_failure
    if failure is None:
        return ""
    return failure.nodeid.rsplit("::", 1)[-1].split("[", 1)[0][:_LIMITS["property"]]


def hint_headline(hint: str) -> str:
    """The first non-empty line of a hint, cut to HINT_CHARS."""
    line = next((line.strip() for line in hint.splitlines() if line.strip()), "")
    return _CONTROL.sub(" ", line)[:HINT_CHARS]


def record_from_result(quest_result: QuestResult, learner_id: str, attempt: int, at: str) -> dict:
    """One record for one quest of one `tracequest check` run."""
    passed = quest_result.passed
    return {
        "attempt_id": uuid.uuid4().hex,
        "learner_id": learner_id,
        "quest": quest_result.quest_id,
        "verdict": "passed" if passed else "failed",
        "property": "" if passed else failing_property(quest_result),
        "hint": "" if passed else hint_headline(quest_result.hint),
        "attempt": attempt,
        "duration_s": round(sum(c.seconds for c in quest_result.checks), 3),
        "tool_version": __version__,
        "at": at,
    }


def validate(data: object) -> dict:
    """The record ``data`` is, checked field by field; a ClassError names the first bad field."""
    if not isinstance(data, dict):
        raise ClassError("a record must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ClassError(f"a record has no field {unknown[0]!r}; its fields are: {', '.join(FIELDS)}")
    missing = [name for name in FIELDS if name not in data]
    if missing:
        raise ClassError(f"the record lacks its {missing[0]!r} field")
    for name in ("attempt_id", "learner_id", "quest", "verdict", "property", "hint", "tool_version", "at"):
        if not isinstance(data[name], str):
            raise ClassError(f"{name!r} must be a string")
        if len(data[name]) > _LIMITS.get(name, 64):
            raise ClassError(f"{name!r} is longer than {_LIMITS.get(name, 64)} characters")
        if _CONTROL.search(data[name]):
            raise ClassError(f"{name!r} holds a control character")
    if not _ATTEMPT_ID.fullmatch(data["attempt_id"]):
        raise ClassError("'attempt_id' must be 32 lowercase hex digits")
    if data["quest"] not in {quest.id for quest in all_quests()}:
        raise ClassError(f"there is no quest {data['quest']!r}")
    if data["verdict"] not in VERDICTS:
        raise ClassError(f"'verdict' must be one of: {', '.join(VERDICTS)}")
    attempt = data["attempt"]
    if not isinstance(attempt, int) or isinstance(attempt, bool) or not 1 <= attempt <= 100_000:
        raise ClassError("'attempt' must be a whole number from 1 to 100000")
    duration = data["duration_s"]
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or not 0 <= duration < 3600:
        raise ClassError("'duration_s' must be a number of seconds from 0 to 3600")
    try:
        parse_rfc3339(data["at"])
    except ValueError:
        raise ClassError("'at' must be an RFC 3339 time, e.g. 2026-12-04T18:40:00Z") from None
    return {name: data[name] for name in FIELDS}


#: A learner's display name on the board: at most this many characters.
NAME_CHARS = 80
# Characters that reorder or break the text around them on the projector (bidi overrides,
# isolates and marks, line and paragraph separators); with Unicode's control characters
# they make a name refused.
_LAYOUT_CONTROL = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_GITHUB_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")


def clean_name(name: object) -> str:
    """A learner's display name as the board keeps it: stripped, 1 to 80 characters, no control characters."""
    if not isinstance(name, str):
        raise ClassError("'name' must be a string")
    name = name.strip()
    if not name:
        raise ClassError("'name' must not be empty")
    if len(name) > NAME_CHARS:
        raise ClassError(f"'name' is longer than {NAME_CHARS} characters")
    if _LAYOUT_CONTROL.search(name) or any(unicodedata.category(char) == "Cc" for char in name):
        raise ClassError("'name' holds a control character")
    return name


def clean_github_username(value: object) -> str:
    """A GitHub user name as given at join or in a roster ("" when there is none)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClassError("'github_username' must be a string")
    value = value.strip()
    if value and not _GITHUB_USERNAME.fullmatch(value):
        raise ClassError("'github_username' must be a GitHub user name: letters, digits and hyphens, "
                         "at most 39 characters")
    return value
