"""Quest 03, the slow-span mystery: name the operation that holds the time.

There is no code to check. The check reads your mystery (``tracequest mystery
new``) and your answer (``tracequest answer slow-span ...``) from the lab home,
runs the whole demo with your mystery on, on free ports of its own, sends it
12 requests, 4 at a time, and works out from the traces which operation holds
the most self time. A lab you have running is not touched.
"""

import pytest

from tracequest.lab import find_home
from tracequest.quests.failure import fail
from tracequest.quests.mystery import load_answer, load_seed
from tracequest.quests.mystery_run import CONCURRENCY, REQUESTS, run_mystery
from tracequest.quests.slow_span import ANSWER_HOW, judge

pytestmark = pytest.mark.quest("03")


def test_your_answer_names_the_operation_that_holds_the_time():
    """Your answer names the operation holding the most self time in your mystery's traces."""
    home = find_home()
    seed = load_seed(home)
    if seed is None:
        fail("a mystery to solve, drawn for you",
             f"no mystery is drawn yet ({home / 'mystery.json'} does not exist).",
             "run `tracequest mystery new`: it draws one and restarts the lab with it. "
             "Then follow what it prints.")
    answer = load_answer(home)
    if answer is None:
        fail(f"your answer to mystery #{seed}",
             "you have not answered yet.",
             f"find the operation that holds the most time of its own, then record it: "
             f"{ANSWER_HOW} (for example: tracequest answer slow-span frontend find best ETA).")
    traces = run_mystery(seed, REQUESTS, CONCURRENCY)
    judge(traces, answer["service"], answer["operation"])
