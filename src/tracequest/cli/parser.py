"""What every command family shares: the parser classes, one helper to add a command, and the
checked option types.

A bad value is refused by these types with exit code 2 and one line, before
anything is sent anywhere.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from tracequest.lab import Lab
from tracequest.lab.settings import COLLECTOR_CONFIGS
from tracequest.traces.client import default_url
from tracequest.traces.timefmt import parse_go_duration

_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless there is none or its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Help with defaults for every command, and usage errors on one line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def command(commands, name: str, help: str, description: str, func, **kwargs) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` that runs ``func``; its usage errors name it (``args.prog``)."""
    parser = commands.add_parser(name, help=help, description=description, **kwargs)
    parser.set_defaults(func=func, prog=parser.prog)
    return parser


def url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", type=http_url,
                        help="query API URL (default: the running lab's, else $TRACEQUEST_QUERY_URL, "
                             "else http://127.0.0.1:16686)")


def query_url(args) -> str:
    """The query API a command reads: ``--url``, else the running lab's, else the default."""
    if getattr(args, "url", None):
        return args.url
    lab = Lab.from_state()
    return lab.query_url if lab else default_url()


def use_color(choice: str = "auto", stream=None) -> bool:
    """Colour on a terminal unless NO_COLOR is set (https://no-color.org); always/never decide."""
    if choice != "auto":
        return choice == "always"
    stream = stream or sys.stdout
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")


# --- values checked before anything is sent ---------------------------------

def at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def duration(text: str) -> str:
    """A Go duration, checked by the project's one parser and kept as typed (for messages)."""
    try:
        parse_go_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def positive_duration(text: str) -> str:
    if parse_go_duration(duration(text)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is no time at all; give a duration above 0, e.g. 1h")
    return text.strip()


def trace_id(text: str) -> str:
    """1-32 hex digits, as Jaeger takes them; padded to the 32 a trace id has."""
    if not _TRACE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a trace id; a trace id is 1 to 32 hex digits (0-9, a-f), "
            "e.g. 4bf92f3577b34da6a3ce929d0e0e4736")
    return text.lower().rjust(32, "0")


def http_url(text: str) -> str:
    if not re.match(r"https?://[^/\s]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL like http://127.0.0.1:16686")
    return text.rstrip("/")


def collector_config(text: str) -> str:
    if text in COLLECTOR_CONFIGS or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither one of {', '.join(COLLECTOR_CONFIGS)} nor a YAML file that exists")
