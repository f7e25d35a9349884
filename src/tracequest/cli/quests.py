"""The quest commands of the `tracequest` CLI: check, quests, hint, mystery, answer.

Each command is a small ``_add_*`` function plus its handler, so more can join
the list. ``mystery`` and ``answer`` belong to quest 03, whose files and lab
live in ``mystery.py``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from tracequest.classroom.client import report
from tracequest.cli.options import add_port_options, ports_from_args
from tracequest.lab.home import find_home
from tracequest.quests import mystery
from tracequest.quests.board import marks_for
from tracequest.quests.paths import QuestSetupError, find_root, labs_dir
from tracequest.quests.progress import Progress
from tracequest.quests.registry import BADGES, all_quests
from tracequest.quests.runner import quest_or_error, run_checks


def register(commands) -> None:
    """Add the quest subcommands to the CLI's subparsers."""
    _add_check(commands)
    _add_quests(commands)
    _add_hint(commands)
    _add_mystery(commands)
    _add_answer(commands)


def _add_check(commands) -> None:
    check = commands.add_parser("check", help="run the quest checks and show the quest board",
                                description="Run the quest checks against your code in labs/ "
                                            "(or $TRACEQUEST_LABS_DIR) and show the quest board.")
    check.add_argument("quest", nargs="*", metavar="QUEST", help="quest ids, e.g. 01 or 4 (default: all)")
    check.set_defaults(func=cmd_check)


def _add_quests(commands) -> None:
    quests = commands.add_parser("quests", help="list the quests, your XP and badges",
                                 description="List every quest with its level, XP and lab folder, "
                                             "marking the ones you completed; then your XP and badges.")
    quests.set_defaults(func=cmd_quests)


def _add_hint(commands) -> None:
    hint = commands.add_parser("hint", help="show a quest's goal and your latest hint for it",
                               description="Show a quest's goal, where its README is, and the hint "
                                           "your last `tracequest check` gave for it.")
    hint.add_argument("quest", metavar="QUEST", help="a quest id, e.g. 01 or 4 (see `tracequest quests`)")
    hint.set_defaults(func=cmd_hint)


def _add_mystery(commands) -> None:
    parser = commands.add_parser(
        "mystery", help="quest 03: draw a slow-span mystery and run the lab with it",
        description="Quest 03: one operation of the demo is made slow on purpose; "
                    "find it in the traces. Without an action, shows your mystery.")
    actions = parser.add_subparsers(metavar="ACTION")
    new = actions.add_parser("new", help="draw a new mystery and (re)start the lab with it",
                             description="Draw a new mystery (a new seed), clear an answer given "
                                         "for another one, and (re)start the lab with it.")
    new.add_argument("--seed", type=_seed, help="pick the mystery yourself (any whole number), "
                                                "e.g. to share one with a classmate "
                                                "(default: a new random one)")
    new.add_argument("--no-start", action="store_true", help="only draw it; leave the lab alone")
    add_port_options(new)
    new.set_defaults(func=cmd_mystery_new)
    start = actions.add_parser("start", help="(re)start the lab with the mystery you drew",
                               description="(Re)start the lab with the mystery you drew, keeping "
                                           "the lab's backend and ports unless you move them.")
    add_port_options(start)
    start.set_defaults(func=cmd_mystery_start)
    status = actions.add_parser("status", help="your mystery, whether the lab runs it, your answer",
                                description="Show your mystery's number, whether the running lab "
                                            "has it on, and the answer you recorded.")
    status.set_defaults(func=cmd_mystery_status)
    parser.set_defaults(func=cmd_mystery_status)


def _add_answer(commands) -> None:
    parser = commands.add_parser(
        "answer", help="answer a quest's question: quest 03's slow span and assistant",
        description="Record your answer to a quest's question; `tracequest check 03` judges it.")
    parser.add_argument("question", choices=list(mystery.QUESTIONS),
                        help="which question of quest 03: slow-span (the /dispatch traces) or "
                             "assistant (the assistant's trouble)")
    parser.add_argument("service", help="the service the span belongs to, e.g. frontend")
    parser.add_argument("operation", nargs="+",
                        help="the span name as the trace shows it, e.g. find best ETA "
                             "(no quotes needed)")
    parser.set_defaults(func=cmd_answer)


def _seed(text: str) -> int:
    """A mystery's seed: any whole number, refused with a plain sentence otherwise."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def cmd_check(args) -> int:
    try:
        # Joined to a class board (`tracequest class join`)? Then it hears of this run too.
        return run_checks(args.quest,
                          on_results=lambda results: report(results, find_home(), out=_above_board))
    except QuestSetupError as exc:
        print(f"tracequest check: {exc}", file=sys.stderr)
        return 2


def _above_board(line: str) -> None:
    print(line, end="\n\n", flush=True)


def cmd_quests(args) -> int:
    progress = Progress.load(find_home())
    marks = marks_for()
    width = max(len(q.title) for q in all_quests())
    for quest in all_quests():
        mark = marks["pass"] if progress.is_complete(quest.id) else marks["todo"]
        print(f"  {mark} {quest.id:<4} {quest.title:<{width}} {quest.level:<13} {quest.xp:>4} XP  "
              f"labs/{quest.lab_folder}/")
    total = sum(q.xp for q in all_quests())
    owned = [b.name for b in BADGES if b.name in progress.badges]
    print(f"\n  XP {progress.xp} / {total}    Badges: {', '.join(owned) or 'none yet'}")
    print("\n  Start a quest by reading its README.md; check it with `tracequest check <id>`.")
    return 0


def cmd_hint(args) -> int:
    try:
        quest = quest_or_error(args.quest)
        folder = labs_dir(find_root()) / quest.lab_folder
    except QuestSetupError as exc:
        print(f"tracequest hint: {exc}", file=sys.stderr)
        return 2
    progress = Progress.load(find_home())
    print(f"{quest.id} {quest.title} ({quest.level}, {quest.xp} XP)")
    print(f"  Goal: {quest.goal}")
    print(f"  Read: {folder / 'README.md'}")
    if progress.is_complete(quest.id):
        print("  You have completed this quest.")
    elif quest.id in progress.last_hints:
        print(textwrap.fill(f"Hint from your last check: {progress.last_hints[quest.id]}", 88,
                            initial_indent="  ", subsequent_indent="    "))
    else:
        print(f"  No check has run yet: try `tracequest check {quest.id}`.")
    return 0


def cmd_mystery_new(args) -> int:
    home = find_home()
    seed = args.seed if args.seed is not None else mystery.draw_seed(mystery.load_seed(home))
    mystery.save_seed(home, seed)
    print(f"Mystery #{seed}: somewhere in the demo, one operation is now slow on purpose,")
    print("  and the assistant has a trouble of its own.")
    print(f"  Kept in {home / mystery.MYSTERY_FILE} (only the seed; the answer is yours to find).")
    if mystery.clear_answer(home):
        print("  Your earlier answer was for another mystery, so it was cleared.")
    if args.no_start:
        print("\nThe lab was left alone (--no-start).")
        _print_mystery_steps(None)
        return 0
    print()
    _print_mystery_steps(mystery.start_lab(home, seed, ports=ports_from_args(args)))
    return 0


def cmd_mystery_start(args) -> int:
    home = find_home()
    seed = mystery.load_seed(home)
    if seed is None:
        print("No mystery drawn yet: run `tracequest mystery new`.", file=sys.stderr)
        return 1
    _print_mystery_steps(mystery.start_lab(home, seed, ports=ports_from_args(args)))
    return 0


def cmd_mystery_status(args) -> int:
    home = find_home()
    seed = mystery.load_seed(home)
    if seed is None:
        print("No mystery drawn yet: run `tracequest mystery new`.")
        return 1
    runs = mystery.lab_runs(home, seed)
    print(f"Mystery #{seed}.")
    print({True: "  The lab is running it.",
           False: "  The lab is running WITHOUT it: restart it with `tracequest mystery start`.",
           None: "  The lab is not running: start it with `tracequest mystery start`."}[runs])
    for question in mystery.QUESTIONS:
        answer = mystery.load_answer(home, question)
        if answer is None:
            print(f"  No {question} answer yet: tracequest answer {question} <service> <operation>")
        else:
            print(f"  Your {question} answer: '{answer['operation']}' in {answer['service']}.")
    print("  Check your answers: tracequest check 03")
    return 0


def cmd_answer(args) -> int:
    home = find_home()
    operation = " ".join(args.operation)
    mystery.save_answer(home, args.service, operation, args.question)
    print(f"Recorded your {args.question} answer: the operation '{operation}' in the service "
          f"{args.service}.")
    if mystery.load_seed(home) is None:
        print("No mystery is drawn yet, though: start one with `tracequest mystery new`.")
    print("Check it with: tracequest check 03")
    return 0


def _print_mystery_steps(lab) -> None:
    """What to do next; `lab` is the lab running the mystery, or None if none was started."""
    viewer = f"{lab.query_url}/" if lab else "(its URL shows once the lab is up)"
    frontend = lab.frontend_url if lab else "http://127.0.0.1:8080"
    steps = [] if lab else ["Start the lab with the mystery:  tracequest mystery start"]
    steps += [
        "Send load, 4 requests at a time:  tracequest load -n 20 -c 4",
        "Find the operation that holds the most time of its own (self time), in\n"
        f"       the trace viewer   {viewer}\n"
        "       the notebook       notebooks/04-reading-traces.ipynb\n"
        "       the terminal       tracequest traces, then tracequest show <trace-id>",
        "Answer with its service and span name, for example:\n"
        "       tracequest answer slow-span frontend find best ETA",
        "Ask the assistant a few questions (the page's ask box, or\n"
        f"       curl -X POST {frontend}/ask -H 'Content-Type: application/json' \\\n"
        "            -d '{\"question\": \"why is my driver late?\", \"customer\": \"123\"}')\n"
        "       and find its trouble: the agent span if the agent gives up, else the\n"
        "       assistant's operation with the most self time. Answer, for example:\n"
        "       tracequest answer assistant assistant execute_tool route_eta",
        "Check your answers:  tracequest check 03",
    ]
    print("\nNext:")
    for number, step in enumerate(steps, 1):
        print(f"  {number}. {step}")
