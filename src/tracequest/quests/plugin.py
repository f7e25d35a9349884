"""The pytest plugin behind the quest checks.

It gives checks their ``quest`` marker, lets ``--quest 04`` pick quests,
replaces the traceback of a :class:`QuestFailure` with its mentor message,
records each result, saves progress when the learner's own labs were checked,
and prints the quest board at the end. ``checks/pytest.ini`` loads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tracequest.expect.failure import QuestFailure
from tracequest.lab.home import find_home
from tracequest.quests.board import marks_for, render_board
from tracequest.quests.paths import QuestSetupError, find_root, uses_own_labs
from tracequest.quests.progress import Progress
from tracequest.quests.registry import all_quests, get_quest, select
from tracequest.quests.results import CheckResult, RunResults

RESULTS = pytest.StashKey[RunResults]()
UNEXPECTED_HINT = ("this looks like a problem in the check itself, not in your code; "
                   "run `pytest checks -x` to see the details, and tell your instructor.")


def pytest_addoption(parser) -> None:
    group = parser.getgroup("tracequest", "Trace Quest")
    group.addoption("--quest", action="append", default=[], metavar="ID",
                    help="run only this quest's checks (repeatable): 01, 4, 06a ...")
    group.addoption("--quest-report", metavar="PATH", help="write the results as JSON to PATH")
    group.addoption("--no-progress", action="store_true", help="do not record progress")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "quest(id): the quest a check belongs to")
    config.stash[RESULTS] = RunResults()


def quest_id_of(item) -> str:
    marker = item.get_closest_marker("quest")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.quest(<id>) marker")
    return get_quest(marker.args[0]).id


def pytest_collection_modifyitems(config, items) -> None:
    wanted = config.getoption("quest")
    if not wanted:
        return
    try:
        ids = {q.id for q in select(wanted)}
    except KeyError as exc:
        raise pytest.UsageError(str(exc.args[0])) from None
    keep = [item for item in items if quest_id_of(item) in ids]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    failure = call.excinfo.value if call.excinfo else None
    if isinstance(failure, QuestFailure):
        report.longrepr = failure.render()
    if report.when == "call" or (report.failed and report.when == "setup"):
        report.quest_id = quest_id_of(item)
        report.check_title = _title(item)
        item.config.stash[RESULTS].add(_result(item, report, failure))
    return report


def _title(item) -> str:
    doc = getattr(item.function, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else item.name.replace("_", " ")


def _result(item, report, failure) -> CheckResult:
    quest_id, title = report.quest_id, report.check_title
    if report.passed:
        return CheckResult(quest_id, item.nodeid, title, True, seconds=report.duration)
    if isinstance(failure, QuestFailure):
        return CheckResult(quest_id, item.nodeid, title, False, failure.render(), failure.hint,
                           report.duration)
    what = f"{type(failure).__name__}: {failure}" if failure else "it failed"
    message = f"The check stopped on an unexpected error ({what})."
    return CheckResult(quest_id, item.nodeid, title, False, message, UNEXPECTED_HINT, report.duration)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A check file that cannot even load still gets a line on the board."""
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        quest = next((q for q in all_quests() if q.check_file == collector.path.name), None)
        if quest is not None:
            message = f"The check file {collector.path.name} could not be loaded."
            collector.config.stash[RESULTS].add(
                CheckResult(quest.id, report.nodeid, "load the check", False, message, UNEXPECTED_HINT))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session) -> None:
    config = session.config
    results = config.stash[RESULTS]
    if results.quests and not config.getoption("no_progress") and _own_labs(config):
        _save_progress(results)
    path = config.getoption("quest_report")
    if path:
        results.write(Path(path))


def _own_labs(config) -> bool:
    """Progress counts only for the learner's own labs/, never for solutions or test cases."""
    try:
        return uses_own_labs(find_root(config.rootpath))
    except QuestSetupError:
        return False


def _save_progress(results: RunResults) -> None:
    progress = Progress.load(find_home())
    for quest, result in results.in_quest_order():
        xp, badges = progress.record(quest, result.passed, result.hint)
        results.xp_earned += xp
        results.badges_earned += [b.name for b in badges]
    progress.save()
    results.progress_saved = True


def pytest_terminal_summary(terminalreporter, config) -> None:
    results = config.stash[RESULTS]
    if not results.quests:
        return
    progress = Progress.load(find_home())
    terminalreporter.write_sep("=", "quest board")
    terminalreporter.write_line(render_board(results, progress, marks_for()))
