"""``python -m tracequest.programs build|path [NAME] | status``: the registry for scripts.

``build`` and ``path`` print one program's path (Jaeger unless named; stdout
stays one line for scripts); ``status`` prints one line per program the lab
makes and exits 1 when one is missing.
"""

from __future__ import annotations

import sys

from tracequest.programs.cache import ProgramError
from tracequest.programs.registry import BY_NAME, status, status_line

_USAGE = f"usage: python -m tracequest.programs build|path [{'|'.join(BY_NAME)}] | status"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, name = (args + ["jaeger"])[:2] if len(args) in (1, 2) else ("", "")
    if command not in ("build", "path", "status") or name not in BY_NAME \
            or (command == "status" and len(args) != 1):
        print(_USAGE, file=sys.stderr)
        return 2
    if command == "status":
        entries = status().values()
        for entry in entries:
            print(status_line(entry))
        return 0 if all(entry["path"] for entry in entries) else 1
    program = BY_NAME[name]
    if command == "path":
        found = program.find()
        if found is None:
            print(program.missing_reason(), file=sys.stderr)
            return 1
        print(found)
        return 0
    try:
        path = program.ensure(log=lambda line: print(line, file=sys.stderr))
    except ProgramError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
