"""The class board's schema: the SQL files in ``migrations/``, and bringing a database up to them.

The schema is the numbered SQL files in ``migrations/`` (0001_init.sql, ...),
applied in order, each in one transaction together with ``PRAGMA user_version``,
which says how many are applied. This is the one module that knows schema
versions; it lives apart from the store, which opens its database with
:func:`migrate` and then only reads and writes rows.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Iterator

from tracequest.classroom.records import ClassError

_MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The schema's migration files, in order; they must be numbered 0001, 0002, ... without gaps."""
    folder = resources.files("tracequest.classroom") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.number)
    if [migration.number for migration in found] != list(range(1, len(found) + 1)):
        raise ClassError("the class board's migrations are not numbered 0001, 0002, ... without gaps: "
                         + ", ".join(migration.name for migration in found))
    return found


def _statements(migration: Migration) -> Iterator[str]:
    """The SQL statements of a migration, one at a time, so they run inside our own transaction."""
    pending = ""
    for line in migration.sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if any(line.strip() and not line.strip().startswith("--") for line in pending.splitlines()):
        raise ClassError(f"the class board's migration {migration.name} ends without a semicolon")


def migrate(db: sqlite3.Connection, known: list[Migration] | None = None) -> int:
    """Apply every migration the database lacks, each in one transaction; the schema version after.

    ``db`` must be in autocommit mode (``isolation_level=None``). A migration
    that fails leaves the database as it was before that migration.
    """
    known = migrations() if known is None else known
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > len(known):
        raise ClassError(f"the class board's database has schema version {current}, newer than this "
                         f"Trace Quest knows ({len(known)}); upgrade Trace Quest to open it")
    for migration in known[current:]:
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while this one waited for the lock.
            if db.execute("PRAGMA user_version").fetchone()[0] < migration.number:
                for statement in _statements(migration):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {migration.number:d}")
            db.execute("COMMIT")
        except BaseException as exc:
            db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise ClassError(f"the class board's migration {migration.name} failed: {exc}") from None
            raise
    return len(known)
