"""Quest 12's runner: the learner's trace tests, run once per variant of the demo, in a subprocess.

:func:`run_learner_tests` starts one pytest subprocess on the learner's
folder (their code cannot break the check) with two plugins: the
:class:`Recorder` here, which runs every test against each recorded variant
and against no traces at all, and :mod:`tracequest.quests.regressions`, whose
fixtures (``traces``, ``fix_flags``) hand each run its traces. What comes back
is a :class:`TestReport`: per test, what it guards and how it ended on each run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tracequest.expect.failure import QuestFailure
from tracequest.quests import regressions
from tracequest.quests.regressions import (CACHE_ENV, HEALTHY, MARKER, NO_TRACES, DemoRun, regression_name,
                                           variant)


@dataclass
class Outcome:
    """How one test ended on one run: passed, failed (an assertion), error (a crash), skipped."""

    outcome: str
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class LearnerTest:
    """One of the learner's tests, with what it claims to guard and how it fared on each run."""

    name: str
    guards: tuple[str, ...]
    outcomes: dict[str, Outcome]

    def on(self, run_id: str) -> Outcome:
        return self.outcomes.get(run_id) or self.outcomes.get("*") or Outcome("skipped")

    def failed_on(self, run_id: str) -> bool:
        return self.on(run_id).failed


@dataclass
class TestReport:
    """Every test of the learner's folder, run against every variant and against no traces."""

    tests: list[LearnerTest]
    load_errors: list[str]


def run_learner_tests(folder: Path, variant_files: dict[str, Path], timeout: float = 180) -> TestReport:
    """Run the tests in `folder` once per variant, and once with no traces, in one subprocess."""
    runs = [DemoRun(name, str(path), variant(name).fix_flags) for name, path in variant_files.items()]
    runs.append(DemoRun(NO_TRACES, "", HEALTHY[0].fix_flags))
    with tempfile.TemporaryDirectory(prefix="tracequest-trace-test-") as tmp:
        plan, report = Path(tmp) / "plan.json", Path(tmp) / "report.json"
        plan.write_text(json.dumps({"folder": str(folder), "report": str(report),
                                    "runs": [asdict(r) for r in runs]}))
        (Path(tmp) / "pytest.ini").write_text("[pytest]\n")
        code = ("import sys; from tracequest.quests.learner_tests import main; "
                "sys.exit(main(sys.argv[1]))")
        env = {k: v for k, v in os.environ.items() if k != CACHE_ENV}
        try:
            done = subprocess.run([sys.executable, "-c", code, str(plan)], cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return TestReport([], [f"your tests did not finish within {timeout:g} s"])
        if not report.exists():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            return TestReport([], [f"pytest could not run your tests:\n{tail}"])
        return _read_report(json.loads(report.read_text()))


def _read_report(data: dict) -> TestReport:
    tests = [LearnerTest(t["name"], tuple(t["guards"]),
                         {run: Outcome(**o) for run, o in t["outcomes"].items()})
             for t in data["tests"]]
    return TestReport(tests, data["load_errors"])


def main(plan_path: str) -> int:
    """In the subprocess: run pytest on the learner's folder with the recorder, write the report."""
    plan = json.loads(Path(plan_path).read_text())
    folder = plan["folder"]
    recorder = Recorder([DemoRun(**r) for r in plan["runs"]])
    ini = str(Path(plan_path).parent / "pytest.ini")
    code = pytest.main([folder, "-c", ini, "--rootdir", folder, "--confcutdir", folder,
                        "-p", "no:cacheprovider", "-q", "--no-header", "-W", "ignore"],
                       plugins=[recorder, regressions])
    Path(plan["report"]).write_text(json.dumps(recorder.report()))
    return int(code)


class Recorder:
    """A pytest plugin: runs each test against every run of the demo and records how it ended."""

    def __init__(self, runs: list[DemoRun]):
        self.runs = runs
        self.tests: dict[str, dict] = {}
        self.load_errors: list[str] = []

    def pytest_generate_tests(self, metafunc) -> None:
        if "demo_run" in metafunc.fixturenames:
            metafunc.parametrize("demo_run", self.runs, ids=[_param_id(r.id) for r in self.runs],
                                 scope="session")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self._record(item, report, call.excinfo)
        return report

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.load_errors.append(_error_lines(report.longreprtext))

    def _record(self, item, report, excinfo) -> None:
        run = getattr(getattr(item, "callspec", None), "params", {}).get("demo_run")
        run_id = run.id if run is not None else "*"
        key, name = _test_key(item)
        entry = self.tests.setdefault(key, {
            "name": name, "outcomes": {},
            "guards": [regression_name(a) for m in item.iter_markers(MARKER) for a in m.args]})
        entry["outcomes"][run_id] = asdict(_outcome(report, excinfo))

    def report(self) -> dict:
        return {"tests": list(self.tests.values()), "load_errors": self.load_errors}


def _param_id(run_id: str) -> str:
    return "run_" + run_id.replace("-", "_")  # no dashes: pytest joins parameter ids with them


def _test_key(item) -> tuple[str, str]:
    """The test without the run of the demo it ran on: (node id, name as the learner wrote it)."""
    nodeid, name = item.nodeid, item.name
    if "[" in name:
        base, ids = name[:-1].split("[", 1)
        rest = [part for part in ids.split("-") if not part.startswith("run_")]
        name = base + (f"[{'-'.join(rest)}]" if rest else "")
        nodeid = nodeid.split("[", 1)[0] + (f"[{'-'.join(rest)}]" if rest else "")
    return nodeid, name


def _outcome(report, excinfo) -> Outcome:
    if report.passed:
        return Outcome("passed")
    if report.skipped:
        return Outcome("skipped")
    error = excinfo.value if excinfo is not None else None
    if isinstance(error, QuestFailure):
        return Outcome("failed", error.render())
    if isinstance(error, (AssertionError, pytest.fail.Exception)):
        return Outcome("failed", _trimmed(str(error) or report.longreprtext))
    if error is None:
        return Outcome("error", _trimmed(report.longreprtext))
    where = _learner_line(excinfo)
    return Outcome("error", f"{type(error).__name__}: {error}" + (f" ({where})" if where else ""))


def _learner_line(excinfo) -> str:
    """'test_dispatch_traces.py, line 12': the last place in the learner's folder the error passed."""
    folder = Path.cwd()  # the subprocess runs in the learner's folder
    for entry in reversed(excinfo.traceback):
        path = Path(str(entry.path))
        if path.is_relative_to(folder):
            return f"{path.name}, line {entry.lineno + 1}"
    return ""


def _error_lines(text: str) -> str:
    """What went wrong loading a file, without pytest's own frames: its "E" lines."""
    errors = [line[1:].strip() if line.strip() == "E" else line[4:] if line.startswith("E   ") else None
              for line in text.splitlines()]
    kept = [line for line in errors if line is not None]
    return "\n".join(kept) if kept else _trimmed(text)


def _trimmed(text: str, lines: int = 30) -> str:
    kept = text.strip().splitlines()
    return "\n".join(kept[-lines:])
