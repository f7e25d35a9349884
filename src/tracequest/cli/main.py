"""The `tracequest` command: run the lab and read its traces from a terminal.

It behaves like the command-line tools learners already know: every command
and option has help with its default, a bad value is refused here with exit
code 2 before anything is sent anywhere, a closed pipe (``| head``) ends it
quietly, and colours and progress bars appear only on a terminal (never with
``NO_COLOR`` set).

This module only assembles the command families (one module each beside it)
and turns the library's errors into exit codes: a :class:`UsageError` exits 2,
any other :class:`TraceQuestError` exits 1 with its message on one line.
"""

from __future__ import annotations

import argparse
import os
import sys

from tracequest import __version__
from tracequest.cli import backends, classroom, doctor, lab, quests, traces
from tracequest.cli.options import UsageError
from tracequest.cli.parser import Parser
from tracequest.errors import TraceQuestError

# 128 + SIGPIPE: what a shell reports for a program whose reader went away.
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
        return code
    except BrokenPipeError:
        # The reader (`head`, a closed pager) has all it wanted: stop quietly.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tracequest",
                    description="Trace Quest: learn distributed tracing by doing. Start the lab "
                                "with `tracequest up`, send requests, read their traces.",
                    epilog="Each command has its own help: tracequest COMMAND --help")
    parser.add_argument("--version", action="version", version=f"tracequest {__version__}")
    # Subcommands are Parsers too (argparse uses the parent's class), quests' included.
    # `--help` lists the commands in the order they are added here.
    commands = parser.add_subparsers(metavar="COMMAND")
    lab.register(commands)        # up, down, status
    traces.register(commands)     # traces, show
    lab.register_load(commands)   # load
    backends.register(commands)   # backends build|status
    quests.register(commands)     # check, quests, hint, mystery, answer
    doctor.register(commands)     # doctor
    classroom.register(commands)  # class serve|join|leave|status
    return parser


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UsageError as exc:   # a TraceQuestError too: caught first, for its own exit code
        print(f"{getattr(args, 'prog', 'tracequest')}: error: {exc}", file=sys.stderr)
        return 2
    except TraceQuestError as exc:
        print(f"tracequest: {exc}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's last flush at exit cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured in tests)
        pass
