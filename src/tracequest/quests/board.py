"""The quest board: every quest with its state, one hint per failure, XP and badges.

One line per quest, so the whole journey fits on a screen:

    ✓  passed in this run
    ✗  failed in this run (its hint is printed under it)
    ✓  (earlier) not checked this time, completed before
    ·  not checked this time, not completed yet
"""

from __future__ import annotations

import sys
import textwrap

from tracequest.quests.progress import Progress
from tracequest.quests.registry import BADGES, all_quests
from tracequest.quests.results import RunResults

MARKS = {"pass": "✓", "fail": "✗", "todo": "·"}
ASCII_MARKS = {"pass": "+", "fail": "x", "todo": "-"}


def marks_for(stream=None) -> dict[str, str]:
    """✓ and ✗ where the terminal can print them, plain ASCII where it cannot."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(MARKS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS
    return MARKS


def render_board(results: RunResults, progress: Progress, marks: dict[str, str] = MARKS) -> str:
    lines = ["Trace Quest - quest board", ""]
    width = max(len(q.title) for q in all_quests())
    for quest in all_quests():
        result = results.quests.get(quest.id)
        done_before = progress.is_complete(quest.id)
        if result is not None:
            mark = marks["pass"] if result.passed else marks["fail"]
            note = "" if result.passed or not done_before else "(completed earlier, XP kept)"
        else:
            mark = marks["pass"] if done_before else marks["todo"]
            note = "(earlier)" if done_before else ""
        lines.append(f"  {mark} {quest.id:<4} {quest.title:<{width}} {quest.level:<13} {quest.xp:>4} XP  {note}".rstrip())
        if result is not None and not result.passed and result.hint:
            lines += textwrap.wrap(result.hint, 76, initial_indent="         hint: ",
                                   subsequent_indent="               ")
    total = sum(q.xp for q in all_quests())
    lines += ["", f"  XP {progress.xp} / {total}"]
    owned = [b for b in BADGES if b.name in progress.badges]
    lines.append("  Badges: " + (", ".join(b.name for b in owned) if owned else "none yet"))
    lines += _news(results)
    return "\n".join(lines)


def _news(results: RunResults) -> list[str]:
    if not results.progress_saved:
        return ["", "  (Checked another folder than labs/, so progress was not saved.)"]
    news = []
    if results.xp_earned:
        news.append(f"  +{results.xp_earned} XP this run.")
    for name in results.badges_earned:
        badge = next(b for b in BADGES if b.name == name)
        news.append(f"  New badge: {badge.name} - {badge.description}.")
    return ["", *news] if news else []
