"""`tracequest backends build` and `status`: the real programs the lab makes, read from the registry.

Which programs there are, in which order, how each is found, made and
explained when absent: all of it is :mod:`tracequest.programs.registry`'s, so
a program added there shows here without a change.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tracequest.cli.parser import command
from tracequest.programs.cache import Program, cache_dir
from tracequest.programs.registry import BY_NAME, made_here, status, status_line

#: What `build` says of a program it finds, by artifact: a binary can be compiled again, a jar is
#: a download that `--rebuild` leaves alone.
_ALREADY = {"bin": "{title} is already built; `--rebuild` compiles it again.",
            "jar": "{title} is already fetched."}


def register(commands) -> None:
    backends = command(commands, "backends", "build or inspect the real Jaeger the jaeger and "
                                             "collector backends run",
                       "The jaeger and collector backends run the real Jaeger v2 binary (which "
                       "is also an OpenTelemetry Collector). It is compiled once from the Go "
                       "module proxy and cached per user. Without an action, shows the status.",
                       cmd_backends_status)
    actions = backends.add_subparsers(metavar="ACTION")
    build = command(actions, "build", "build Jaeger once into the cache (a few minutes; needs Go)",
                    "Compile the real Jaeger from the Go module proxy into the per-user cache, "
                    "unless it is there already, and fetch the Zipkin server jar from Maven "
                    "Central. Progress goes to stderr; the paths are printed on stdout.",
                    cmd_backends_build)
    build.add_argument("--rebuild", action="store_true",
                       help="compile again even if a binary is cached")
    command(actions, "status", "which binaries are built, their versions and paths",
            "Show each native backend program: its version, where it is (or the command that "
            "builds it) and the image Docker runs instead. Exit code 1 when one is missing.",
            cmd_backends_status)


def provide(program: Program, log, rebuild: bool = False) -> Path:
    """A program the lab makes: compiled again on ``rebuild`` (a jar is never fetched again),
    else said to be there already, else built or fetched now."""
    if rebuild and program.artifact == "bin":
        return program.make(log=log)
    if program.find() is not None:
        log(_ALREADY[program.artifact].format(title=program.title))
    return program.ensure(log=log)


def cmd_backends_build(args) -> int:
    """Build or fetch every program the lab makes, in build order; print each one's path.

    Then fail when one of them is here but cannot run (Zipkin without a Java 17).
    """
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    for program in made_here():
        print(provide(program, log, rebuild=args.rebuild))
        if program.check_runnable is not None:
            program.check_runnable()
    return 0


def cmd_backends_status(args) -> int:
    entries = status()
    print(f"Native backend programs (cache: {cache_dir()}):")
    for entry in entries.values():
        print(f"  {status_line(entry)}")
        detail = f"{entry['note']}; " if entry["path"] else ""
        print(f"  {'':<10} {detail}in Docker: {entry['image']}")
    missing = [name for name, entry in entries.items() if not entry["path"]]
    for name in missing:
        print(BY_NAME[name].missing_reason())
    return 1 if missing else 0
