"""How long the whole quest check suite takes, run against the reference solutions.

A learner runs `tracequest check` often; it should stay well under a minute.
Quest 03 is run with a drawn mystery and its correct answers (slow span and assistant).
Runs `pytest checks` the way the learner's command does (a fresh process,
TRACEQUEST_LABS_DIR pointing at solutions/), then prints the wall time in
total and per check, and fails if any check fails or the total reaches 60 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services.common.mystery import assistant_culprit_for, culprit_for
from tracequest.quests.mystery import ASSISTANT_QUESTION, save_answer, save_seed
from tracequest.quests.results import RunResults

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 60.0
MYSTERY_SEED = 4  # quest 03 has no code to solve: a drawn mystery and its right answer stand in


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        save_seed(Path(home), MYSTERY_SEED)
        save_answer(Path(home), *culprit_for(MYSTERY_SEED).answer)
        save_answer(Path(home), *assistant_culprit_for(MYSTERY_SEED).answer, ASSISTANT_QUESTION)
        report = Path(home) / "results.json"
        env = {**os.environ, "TRACEQUEST_LABS_DIR": str(ROOT / "solutions"), "TRACEQUEST_HOME": home}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "checks", "-q", "--no-progress",
                               "--quest-report", str(report)], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        total = time.perf_counter() - started
        if not report.exists():
            print(done.stdout, done.stderr, sep="\n")
            return 1
        results = RunResults.read(report)
    for quest, result in results.in_quest_order():
        for check in result.checks:
            state = "pass" if check.passed else "FAIL"
            print(f"  {state}  {quest.id:<4} {check.seconds:5.2f}s  {check.title[:70]}")
    print(f"check suite against solutions/: {total:.1f}s wall, budget {BUDGET_S:.0f}s")
    return 0 if results.all_passed and total < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
