"""GitHub Classroom's roster CSV: its columns, and reading the roster an instructor uploads.

It is a file format, checked row by row before anything is stored, so it
lives apart from the store: ``POST /api/roster`` reads the upload with
:func:`parse_roster_csv`, then :meth:`BoardStore.import_roster` stores the
entries; ``GET /api/roster.csv`` writes the same :data:`ROSTER_COLUMNS` back.
"""

from __future__ import annotations

import csv
import io
import re

from tracequest.classroom.records import ClassError, clean_github_username, clean_name

#: A roster import holds at most this many rows.
MAX_ROSTER_ROWS = 5000
#: GitHub Classroom's roster columns, in its order; identifier is the board's learner_id.
ROSTER_COLUMNS = ("identifier", "github_username", "github_id", "name")

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_GITHUB_ID = re.compile(r"[0-9]{1,20}")


def parse_roster_csv(text: str) -> list[dict]:
    """Roster entries from a CSV in GitHub Classroom's columns; a ClassError names the first bad row.

    The header must name ``name`` or ``github_username`` (and may name
    ``identifier`` and ``github_id``; other columns are ignored). An entry
    without a name is named by its GitHub user name.
    """
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [column.strip() for column in (reader.fieldnames or [])]
        if not {"name", "github_username"} & set(header):
            raise ClassError("the roster's first line must name its columns: " + ",".join(ROSTER_COLUMNS))
        reader.fieldnames = header
        entries, identifiers = [], set()
        for number, row in enumerate(reader, start=2):
            values = {column: (row.get(column) or "").strip() for column in ROSTER_COLUMNS}
            if not any(values.values()):
                continue
            if len(entries) == MAX_ROSTER_ROWS:
                raise ClassError(f"the roster has more than {MAX_ROSTER_ROWS} rows")
            try:
                values["github_username"] = clean_github_username(values["github_username"])
                values["name"] = clean_name(values["name"] or values["github_username"])
            except ClassError as exc:
                raise ClassError(f"roster line {number}: {exc}") from None
            if values["identifier"] and not _IDENTIFIER.fullmatch(values["identifier"]):
                raise ClassError(f"roster line {number}: 'identifier' must be 1 to 64 letters, digits "
                                 f"or . _ @ + - characters")
            if values["identifier"] in identifiers:
                raise ClassError(f"roster line {number}: identifier {values['identifier']!r} comes twice")
            if values["github_id"] and not _GITHUB_ID.fullmatch(values["github_id"]):
                raise ClassError(f"roster line {number}: 'github_id' must be a number")
            if values["identifier"]:
                identifiers.add(values["identifier"])
            entries.append(values)
    except csv.Error as exc:
        raise ClassError(f"the roster is not a readable CSV file ({exc})") from None
    return entries
