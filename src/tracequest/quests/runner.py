"""`tracequest check`: run the quest checks with pytest underneath and the board on top.

pytest runs in this process with its terminal output switched off. The quest
plugin records every result into a JSON report; this module prints a line per
check as it finishes, then each failure in full, then the board. A learner
never sees a pytest traceback.
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from tracequest.lab.home import find_home
from tracequest.quests.board import marks_for, render_board
from tracequest.quests.paths import QuestSetupError, find_root, labs_dir
from tracequest.quests.progress import Progress
from tracequest.quests.registry import Quest, all_quests, get_quest, select
from tracequest.quests.results import RunResults


class LiveLines:
    """A tiny pytest plugin: one line per check, as soon as it is decided."""

    def __init__(self, out, marks: dict[str, str]):
        self.out = out
        self.marks = marks

    def pytest_runtest_logreport(self, report) -> None:
        if not hasattr(report, "quest_id"):
            return
        if report.when == "call" or (report.failed and report.when == "setup"):
            mark = self.marks["pass"] if report.passed else self.marks["fail"]
            title = textwrap.shorten(report.check_title, 70, placeholder="...")
            print(f"  {mark} {report.quest_id:<4} {title:<70} {report.duration:5.1f}s",
                  file=self.out, flush=True)


def run_checks(quest_ids: list[str], out=None,
               on_results: Callable[[RunResults], None] | None = None) -> int:
    """Run the checks of these quests (all when empty); 0 when every one passed.

    ``on_results``, when given, is called once with the run's results just
    before the board is printed (the CLI reports them to a class board there).
    """
    import pytest  # lazy: every other `tracequest` command starts without loading pytest

    out = out or sys.stdout
    root = find_root()
    quests = _chosen(quest_ids)
    checks = root / "checks"
    files = sorted({str(checks / q.check_file) for q in quests if (checks / q.check_file).exists()})
    if not files:
        raise QuestSetupError(f"no check files for {', '.join(q.id for q in quests)} in {checks}")
    marks = marks_for(out)
    where = labs_dir(root)
    print(f"Checking {_names(quests)} against {_shown(where, root)}: each check starts your code, "
          "sends it requests and reads its traces.", file=out, flush=True)
    with tempfile.TemporaryDirectory(prefix="tracequest-") as tmp:
        report = Path(tmp) / "results.json"
        args = [*files, "-c", str(checks / "pytest.ini"), "--rootdir", str(checks),
                "-p", "no:terminal", "--quest-report", str(report)]
        for quest in quests:
            args += ["--quest", quest.id]
        code = pytest.main(args, plugins=[LiveLines(out, marks)])
        if not report.exists():
            raise QuestSetupError(f"the checks could not run (pytest exit code {int(code)}); "
                                  f"try `pytest {checks}` to see why.")
        results = RunResults.read(report)
    _print_failures(results, out)
    print("", file=out)
    if on_results is not None:
        on_results(results)
    print(render_board(results, Progress.load(find_home()), marks), file=out)
    return 0 if results.all_passed and int(code) == 0 else 1


def _chosen(quest_ids: list[str]) -> list[Quest]:
    try:
        return select(quest_ids) if quest_ids else list(all_quests())
    except KeyError as exc:
        raise QuestSetupError(str(exc.args[0])) from None


def _names(quests: list[Quest]) -> str:
    if len(quests) == len(all_quests()):
        return "every quest"
    return ("quest " if len(quests) == 1 else "quests ") + ", ".join(q.id for q in quests)


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) + "/"
    except ValueError:
        return str(path)


def _print_failures(results: RunResults, out) -> None:
    for quest, result in results.in_quest_order():
        failure = result.first_failure
        if failure is None:
            continue
        print(f"\n{quest.id} {quest.title}: {failure.title}", file=out)
        print(textwrap.indent(failure.message, "  "), file=out)


def quest_or_error(text: str) -> Quest:
    try:
        return get_quest(text)
    except KeyError:
        known = ", ".join(q.id for q in all_quests())
        raise QuestSetupError(f"no quest {text!r}; the quests are {known}") from None
