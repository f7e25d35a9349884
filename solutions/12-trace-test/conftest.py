"""The fixtures your tests use. You do not need to change this file.

  traces     the /dispatch traces of one run of the demo (tracequest.model.Trace, newest first)
  fix_flags  the fix flags that run used, by knob name, e.g. fix_flags["fix-route-worker-pool-size"]

Run by you (`pytest labs/12-trace-test`), they read your running lab's newest
/dispatch traces. Run by the check (`tracequest check 12`), they hand your
tests one run of the demo at a time: healthy, or with a regression injected.
"""

from tracequest.quests.regressions import (  # noqa: F401
    demo_run, fix_flags, pytest_configure, traces)
