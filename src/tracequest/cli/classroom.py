"""`tracequest class serve|join|leave|status`: instructor mode, a live class board for a workshop.

The instructor serves the board (:mod:`tracequest.classroom.server`); each
learner joins it once (:mod:`tracequest.classroom.client`), and from then on
every `tracequest check` reports to it (``cmd_check`` in ``quests.py`` wires that).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tracequest.classroom.client import check_url, join, learner_link, leave, status
from tracequest.classroom.records import ClassError
from tracequest.classroom.server import serve
from tracequest.cli.parser import command
from tracequest.lab.home import find_home


def register(commands) -> None:
    """Add `class` and its actions to the CLI's subparsers."""
    group = command(commands, "class", "instructor mode: serve a live class board, or join one",
                    "Instructor mode. The instructor runs `tracequest class serve` and shares its "
                    "address and class code; each learner runs `tracequest class join` once, and "
                    "from then on every `tracequest check` sends the board one small record per "
                    "quest (quest, verdict, failing check, hint line, attempt, duration, time; "
                    "never code, files or traces). Without an action, shows your class status.",
                    cmd_class_status)
    actions = group.add_subparsers(metavar="ACTION")
    serve_cmd = command(actions, "serve", "run the class board (instructor)",
                        "Run the class board: a web page for the projector, live as learners "
                        "check their quests, and the API their checks report to. The first start "
                        "creates the class (its code and the instructor link, printed); later "
                        "starts on the same database keep it. Stop it with Ctrl-C.",
                        cmd_class_serve)
    serve_cmd.add_argument("--host", default="127.0.0.1",
                           help="address to listen on; 0.0.0.0 opens the board to the workshop "
                                "network (anyone on it can reach it)")
    serve_cmd.add_argument("--port", type=_port, default=8090, metavar="PORT", help="port to listen on")
    serve_cmd.add_argument("--db", type=Path, metavar="PATH",
                           help="the board's SQLite file (default: class/board.db in the lab home, "
                                ".tracequest/ or $TRACEQUEST_HOME)")
    serve_cmd.add_argument("--idle-minutes", type=_minutes, default=10, metavar="N",
                           help="show a learner as idle after N minutes without a check (1 to 240)")
    join_cmd = command(actions, "join", "join a class board (learner, once)",
                       "Join the class board your instructor serves. The board's learner id and "
                       "your token are kept in class.json in the lab home (readable by you "
                       "only); from then on every `tracequest check` reports to the board, and "
                       "results wait in a queue while it cannot be reached.",
                       cmd_class_join)
    join_cmd.add_argument("url", type=_board_url, metavar="URL",
                          help="the board's address, as your instructor gives it, "
                               "e.g. http://192.168.1.20:8090")
    join_cmd.add_argument("code", metavar="CODE", help="the class code, e.g. TRACE-7Q4K")
    join_cmd.add_argument("--name", required=True,
                          help="your name as the board shows it (1 to 80 characters)")
    join_cmd.add_argument("--github", metavar="USER",
                          help="your GitHub username, to match your instructor's roster")
    command(actions, "leave", "stop reporting to the class board",
            "Stop reporting your checks to the class board: delete class.json and the queue "
            "(saying how many results were not sent).", cmd_class_leave)
    command(actions, "status", "whether you are in a class, and what is queued",
            "Show the class you joined, your name on its board, what the board shows of you, "
            "and how many results are queued or were refused; queued results are sent now. "
            "Exit code 1 when you are not in a class.", cmd_class_status)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {value}")
    return value


def _minutes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if not 1 <= value <= 240:
        raise argparse.ArgumentTypeError(f"must be from 1 to 240 minutes, not {value}")
    return value


def _board_url(text: str) -> str:
    try:
        return check_url(text)
    except ClassError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_class_serve(args) -> int:
    return serve(args.db, host=args.host, port=args.port, idle_minutes=args.idle_minutes, out=print)


def cmd_class_join(args) -> int:
    state = join(args.url, args.code, args.name, find_home(), github_username=args.github)
    print(f"Joined the class at {state['url']} as {state['name']!r}.")
    print("  From now on every `tracequest check` sends the board one small record per quest "
          "checked;")
    print("  `tracequest class status` shows what is queued, `tracequest class leave` stops it.")
    print(f"  Your own row on the board: {learner_link(state)}")
    print("  (that link holds your key to the board; keep it to yourself)")
    return 0


def cmd_class_leave(args) -> int:
    leave(find_home())
    return 0


def cmd_class_status(args) -> int:
    return 0 if status(find_home()) else 1

