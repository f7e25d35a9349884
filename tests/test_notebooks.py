"""Every chapter notebook runs top to bottom against a real lab, in under two minutes.

The notebooks are the lab's textbook: a cell that fails is a learner stuck.
Each notebook runs in a fresh kernel whose TRACEQUEST_HOME points at the
session's lab (started on free ports by the ``lab`` fixture), so connect()
in the notebook finds that lab and never a learner's own.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]-*.ipynb"))
TIME_LIMIT_S = 120
# The real programs a chapter runs, by its number: built or fetched before it runs,
# so a chapter never falls back to reading along in CI (the fixtures fail there).
NEEDS = {"06": ("collector_bin",), "09": ("collector_bin", "zipkin_jar", "prometheus_bin"),
         "11": ("collector_bin",), "12": ("collector_bin",)}
ANSI = re.compile(r"\x1b\[[0-9;]*m")

def test_there_is_a_notebook_per_chapter():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    # Chapters 0-9, then the later chapters that exist so far.
    assert numbers[:10] == [f"{n:02d}" for n in range(10)] and set(numbers[10:]) <= {"10", "11", "12"}, \
        f"chapter notebooks found: {[p.name for p in NOTEBOOKS]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} hold outputs or execution counts; "
                       "clear them before committing (Jupyter: Edit > Clear Outputs of All Cells)")


class _TimesReport:
    """A plugin that lists each notebook's run time in pytest's final summary."""

    name = "tracequest-notebook-times"

    def __init__(self):
        self.times: dict[str, float] = {}

    def pytest_terminal_summary(self, terminalreporter):
        if not self.times:
            return
        terminalreporter.section(f"notebook run times (limit {TIME_LIMIT_S}s each)")
        for name, seconds in self.times.items():
            terminalreporter.write_line(f"{name:<40} {seconds:6.1f}s")
        terminalreporter.write_line(f"{'total':<40} {sum(self.times.values()):6.1f}s")


@pytest.fixture(scope="module")
def report_times(request) -> dict[str, float]:
    """Where each test records its notebook's run time, printed at the end of the run."""
    plugins = request.config.pluginmanager
    report = plugins.get_plugin(_TimesReport.name)
    if report is None:
        report = _TimesReport()
        plugins.register(report, _TimesReport.name)
    return report.times


def kernel_env(lab) -> dict[str, str]:
    """The kernel sees the test lab and imports this checkout's code."""
    path = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "TRACEQUEST_HOME": str(lab.home), "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    # A learner's settings must not redirect the notebooks away from the test lab.
    for name in ("TRACEQUEST_QUERY_URL", "TRACEQUEST_FRONTEND_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(lab, path, report_times, request):
    for fixture in NEEDS.get(path.name[:2], ()):
        request.getfixturevalue(fixture)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIME_LIMIT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    started = time.monotonic()
    failure = None
    try:
        client.execute(env=kernel_env(lab))
    except CellExecutionError as exc:
        # The message holds the failing cell's source and its traceback (minus terminal colours).
        failure = f"{path.name}: a cell failed.\n{ANSI.sub('', str(exc))}"
    except (CellTimeoutError, DeadKernelError) as exc:
        failure = f"{path.name}: {type(exc).__name__}: {exc}"
    if failure:  # failed outside the except block, so pytest shows only our message
        pytest.fail(failure, pytrace=False)
    elapsed = time.monotonic() - started
    report_times[path.name] = elapsed
    assert elapsed < TIME_LIMIT_S, f"{path.name} took {elapsed:.0f}s; each chapter must run in under {TIME_LIMIT_S}s"
