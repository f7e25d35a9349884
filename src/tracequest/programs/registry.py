"""The one list of the lab's real programs; every other list of programs is read from it.

``tracequest backends build`` and ``status``, ``python -m tracequest.programs``,
the background build of the test suite, the test fixtures, and compose's image
pins (:mod:`tracequest.programs.images`) all iterate :data:`PROGRAMS`. Adding a
program is one module beside this one that defines its ``PROGRAM``, and one
line here. The order is the build order: what the lab makes first comes first.
"""

from __future__ import annotations

from tracequest.programs import collector, jaeger, prometheus, zipkin
from tracequest.programs.cache import BUILD_COMMAND, Program, ProgramError

PROGRAMS: tuple[Program, ...] = (jaeger.PROGRAM, collector.PROGRAM, zipkin.PROGRAM,
                                 prometheus.PROGRAM)
BY_NAME: dict[str, Program] = {program.name: program for program in PROGRAMS}


def program(name: str) -> Program:
    """The registry's entry called ``name``; a KeyError lists the names there are."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no program {name!r}; the lab has {', '.join(BY_NAME)}") from None


def made_here() -> tuple[Program, ...]:
    """The programs the lab builds or fetches itself (``tracequest backends build``)."""
    return tuple(p for p in PROGRAMS if p.make is not None)


def missing_programs() -> list[str]:
    """The programs `tracequest backends build` would still build or fetch; [] when all are here."""
    return [p.title for p in made_here() if p.find() is None]


def status() -> dict[str, dict]:
    """What each program the lab makes is and whether it is here, by name.

    For ``tracequest backends status``. Each entry: ``name``, ``version``,
    ``image`` (what compose/ runs instead), ``path`` (str, or None when not
    there), ``build`` (the command that makes it) and ``note`` (one line).
    """
    entries = {}
    for p in made_here():
        found = p.find()
        where = p.where()
        if found is not None and p.check_runnable is not None:
            try:
                p.check_runnable()
            except ProgramError as exc:   # here, but it cannot run (Zipkin without Java)
                where += f"; but {exc}"
        entries[p.name] = {"name": p.name, "version": p.version, "image": p.image,
                           "path": str(found) if found else None, "build": BUILD_COMMAND,
                           "note": f"{p.origin}, {where}"}
    return entries


def status_line(entry: dict) -> str:
    """One entry of status() as a line a person reads."""
    where = entry["path"] or f"not built (run `{entry['build']}`)"
    return f"{entry['name']:<10} {entry['version']:<8} {where}"

