"""The quest commands of the `tracequest` CLI: check, quests, hint.

Each command is a small ``_add_*`` function plus its handler, so more can join
the list (the mystery of quest 03 brings ``mystery`` and ``answer``).
"""

from __future__ import annotations

import sys
import textwrap

from ..lab import find_home
from .board import marks_for
from .paths import QuestSetupError, find_root, labs_dir
from .progress import Progress
from .registry import BADGES, all_quests
from .runner import quest_or_error, run_checks


def register_commands(commands) -> None:
    """Add the quest subcommands to the CLI's subparsers."""
    _add_check(commands)
    _add_quests(commands)
    _add_hint(commands)


def _add_check(commands) -> None:
    check = commands.add_parser("check", help="run the quest checks and show the quest board",
                                description="Run the quest checks against your code in labs/ "
                                            "(or $TRACEQUEST_LABS_DIR) and show the quest board.")
    check.add_argument("quest", nargs="*", metavar="QUEST", help="quest ids, e.g. 01 or 4 (default: all)")
    check.set_defaults(func=cmd_check)


def _add_quests(commands) -> None:
    quests = commands.add_parser("quests", help="list the quests, your XP and badges")
    quests.set_defaults(func=cmd_quests)


def _add_hint(commands) -> None:
    hint = commands.add_parser("hint", help="show a quest's goal and your latest hint for it")
    hint.add_argument("quest", metavar="QUEST")
    hint.set_defaults(func=cmd_hint)


def cmd_check(args) -> int:
    try:
        return run_checks(args.quest)
    except QuestSetupError as exc:
        print(f"tracequest check: {exc}", file=sys.stderr)
        return 2


def cmd_quests(args) -> int:
    progress = Progress.load(find_home())
    marks = marks_for()
    for quest in all_quests():
        mark = marks["pass"] if progress.is_complete(quest.id) else marks["todo"]
        print(f"  {mark} {quest.id:<4} {quest.title:<22} {quest.level:<13} {quest.xp:>4} XP  "
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
