"""Quest 12, your own trace test: tests that pass on a healthy demo and fail when it breaks.

The check runs the demo on free ports of its own, once per variant: healthy
with its defaults, healthy with every fix on, and once per injected
regression, each of which breaks exactly one property. It sends each variant
a few /dispatch requests and runs your tests (labs/12-trace-test/) against
each variant's traces, and once against no traces at all. A lab you have
running is not touched.

Your tests must all pass on every healthy variant; each must fail on the
regression it guards (@pytest.mark.guards); and every regression must be
caught by one of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tracequest.expect.failure import fail
from tracequest.quests.paths import labs_dir
from tracequest.quests.registry import get_quest
from tracequest.quests.learner_tests import run_learner_tests, LearnerTest
from tracequest.quests.regressions import HEALTHY, MARKER, NO_TRACES, REGRESSIONS, variant, variant_traces

pytestmark = pytest.mark.quest("12")

ROOT = Path(__file__).resolve().parent.parent
FOLDER = labs_dir(ROOT) / get_quest("12").lab_folder
SHOWN = "labs/12-trace-test"
NAMES = ", ".join(r.name for r in REGRESSIONS)
# What to assert for each regression, said as the README says it.
PROPERTY = {
    "double-customer-call": "each trace has exactly one SELECT span of the customer service",
    "unbounded-route-calls": "no more of the frontend's calls to route (the CLIENT parents of "
                             "route's SERVER spans) run at once than "
                             "fix_flags[\"fix-route-worker-pool-size\"]",
    "error-without-exception": "every driver span with status ERROR has an 'exception' event",
}
EMPTY_SELECTION = ("a selection that matches no span passes expect_count(at_most=...), and a loop "
                   "over no spans asserts nothing.")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Your tests, run against every variant of the demo; recorded once for all three checks."""
    if not any(FOLDER.glob("test_*.py")):
        fail(f"your tests in {SHOWN}/test_*.py", "there is no test file there.",
             f"put your tests in {SHOWN}/test_dispatch_traces.py, as the starter has them.")
    return run_learner_tests(FOLDER, variant_traces(tmp_path_factory.mktemp("variants")))


def test_your_tests_pass_on_the_healthy_demo(report):
    """Every one of your tests passes on the healthy demo, whatever the fix flags say."""
    for test in _loaded(report):
        failed = [v for v in HEALTHY if test.failed_on(v.name)]
        if failed:
            _fail_on_healthy(test, failed)


def test_each_of_your_tests_fails_on_the_regression_it_guards(report):
    """Each test fails on the regression it names; none passes whatever happens."""
    _loaded(report)
    for test in _passing_when_healthy(report):
        unknown = [name for name in test.guards if name not in PROPERTY]
        if unknown:
            fail(f"{test.name} to guard one of the regressions: {NAMES}",
                 f"it claims to guard {unknown[0]!r}, which is none of them.",
                 f"name a regression in @pytest.mark.{MARKER}(...) exactly as the README does.")
        caught = [r.name for r in REGRESSIONS if test.failed_on(r.name)]
        if not caught:
            _fail_guards_nothing(test)
        missed = [name for name in test.guards if name not in caught]
        if missed:
            fail(f"{test.name} to fail with regression {missed[0]} on, as it claims",
                 f"it passed with {missed[0]} on; it failed on {', '.join(caught)} instead.",
                 f"with {missed[0]} on, {variant(missed[0]).breaks}. Assert that "
                 f"{PROPERTY[missed[0]]}; or, if the test guards {caught[0]}, name that one in "
                 "its marker.")


def test_every_regression_is_caught(report):
    """Each injected regression makes at least one of your tests fail."""
    _loaded(report)
    guards = _passing_when_healthy(report)
    for regression in REGRESSIONS:
        if not any(test.failed_on(regression.name) for test in guards):
            fail(f"one of your tests to fail with regression {regression.name} on",
                 f"with it on, {regression.breaks}; yet every test that passes on the healthy "
                 "demo passed.",
                 f"write a test, marked @pytest.mark.{MARKER}(\"{regression.name}\"), asserting "
                 f"that {PROPERTY[regression.name]}.")


# --- the verdicts -----------------------------------------------------------------

def _loaded(report) -> list[LearnerTest]:
    """Your tests, once pytest could load them; every check needs them first."""
    if report.load_errors:
        fail(f"pytest to load and run your tests in {SHOWN}", "it could not: see why below.",
             f"fix the error it names; `pytest {SHOWN}` shows the same.",
             details=report.load_errors[0])
    if not report.tests:
        fail(f"at least one test in {SHOWN}", "pytest found no test there.",
             "a test is a function whose name starts with test_, in a file named test_*.py.")
    return report.tests


def _passing_when_healthy(report) -> list[LearnerTest]:
    return [t for t in report.tests if not any(t.failed_on(v.name) for v in HEALTHY)]


def _fail_on_healthy(test: LearnerTest, failed: list) -> None:
    """A test that fails on the healthy demo: crashed, always failing, or tied to one flag setting."""
    first = test.on(failed[0].name)
    if first.outcome == "error":
        fail(f"{test.name} to pass on {failed[0].title}",
             f"it stopped with an error: {(first.message.splitlines() or ['?'])[0]}",
             "a test that crashes fails every build and guards nothing; fix the error it names.",
             details=first.message)
    if all(test.failed_on(v.name) for v in (*HEALTHY, *REGRESSIONS)):
        fail(f"{test.name} to pass on the healthy demo",
             "it failed on every run of the demo, healthy or broken. On "
             f"{failed[0].title} it said what is shown below.",
             "a test that always fails is stricter than the property it guards, and would fail "
             "every build. Read what it expected: a count over all traces at once grows with the "
             "number of requests (count per trace: for trace in traces: select(trace, ...)), and "
             "a limit or a duration may hold only for some fix flags.",
             details=first.message)
    passed = [v for v in HEALTHY if v not in failed]
    if passed:
        fail(f"{test.name} to pass on the healthy demo, whatever the fix flags say",
             f"it passed on {passed[0].title} but failed on {failed[0].title}, as shown below.",
             "it depends on the fix flags: a number they set, such as the route worker pool's "
             "size, must come from the fix_flags fixture "
             "(fix_flags[\"fix-route-worker-pool-size\"]), and durations change with the fixes.",
             details=first.message)
    fail(f"{test.name} to pass on the healthy demo",
         f"it failed on {failed[0].title}, as shown below.",
         "a test that fails on the healthy demo is stricter than the property it guards; "
         "loosen the assertion that fails there.",
         details=first.message)


def _fail_guards_nothing(test: LearnerTest) -> None:
    """A test no regression makes fail: vacuous, or guarding something the regressions keep."""
    claimed = test.guards[0] if test.guards else ""
    if claimed:
        wanted = f"{test.name} to fail with regression {claimed} on"
        assert_this = f"assert that {PROPERTY[claimed]}."
    else:
        wanted = f"{test.name} to fail on one of the regressions ({NAMES})"
        assert_this = (f"assert one of the README's properties, and name its regression with "
                       f"@pytest.mark.{MARKER}(...).")
    if not test.failed_on(NO_TRACES):
        fail(wanted,
             "it passed on every run of the demo, healthy or broken, and even with no traces at "
             "all: it checks nothing.",
             f"{EMPTY_SELECTION} Require the spans the test is about (expect_count(at_least=1) "
             "or exactly=...), with the service and span names a real trace shows (`tracequest "
             f"show`); then {assert_this}")
    why = f"with {claimed} on, {variant(claimed).breaks}" if claimed else \
        "none of the regressions breaks what it asserts"
    fail(wanted,
         "it checks the traces (it fails when there are none), but it guards nothing the "
         f"regressions break: it passed with each of them on ({NAMES}).",
         f"{why}: {assert_this}")
