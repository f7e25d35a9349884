"""Quest 03, the mystery: name the operation that holds the time, and the assistant's trouble.

There is no code to check. The check reads your mystery (``tracequest mystery
new``) and your two answers (``tracequest answer slow-span ...`` and
``tracequest answer assistant ...``) from the lab home, runs the whole demo
with your mystery on, on free ports of its own, sends it 12 requests, 4 at a
time, and (once you have answered for the assistant) asks the assistant 3
questions meanwhile. Then it works out from the traces which operation holds
the most self time, and where the assistant's trouble is. The demo runs once
for both checks. A lab you have running is not touched.
"""

import pytest

from tracequest.lab import find_home
from tracequest.quests import mystery_assistant, slow_span
from tracequest.expect.failure import fail
from tracequest.quests.mystery import ASSISTANT_QUESTION, QUESTION, load_answer, load_seed
from tracequest.quests.mystery_run import CONCURRENCY, QUESTIONS, REQUESTS, run_mystery

pytestmark = pytest.mark.quest("03")


@pytest.fixture(scope="module")
def seed():
    """Your mystery's seed; without one, there is nothing to check."""
    home = find_home()
    drawn = load_seed(home)
    if drawn is None:
        fail("a mystery to solve, drawn for you",
             f"no mystery is drawn yet ({home / 'mystery.json'} does not exist).",
             "run `tracequest mystery new`: it draws one and restarts the lab with it. "
             "Then follow what it prints.")
    return drawn


@pytest.fixture(scope="module")
def demo(seed):
    """The demo run with your mystery: once, for both checks (the assistant only once you answered for it)."""
    asked = QUESTIONS if load_answer(find_home(), ASSISTANT_QUESTION) else ()
    return run_mystery(seed, REQUESTS, CONCURRENCY, questions=asked)


def _answer(seed, question, how, example):
    answer = load_answer(find_home(), question)
    if answer is None:
        fail(f"your answer to mystery #{seed} ({question})",
             "you have not answered yet.",
             f"{how}, then record it: {example}.")
    return answer


def test_your_answer_names_the_operation_that_holds_the_time(seed, request):
    """Your answer names the operation holding the most self time in your mystery's /dispatch traces."""
    answer = _answer(seed, QUESTION, "find the operation that holds the most time of its own",
                     f"{slow_span.ANSWER_HOW} (for example: tracequest answer slow-span frontend "
                     "find best ETA)")
    traces = request.getfixturevalue("demo").dispatch
    slow_span.judge(traces, answer["service"], answer["operation"])


def test_your_answer_names_where_the_assistants_trouble_is(seed, request):
    """Your answer names the assistant's operation its trouble is in."""
    answer = _answer(seed, ASSISTANT_QUESTION,
                     "ask the assistant a few questions and find where its trouble is: the agent "
                     "span if the agent gives up, otherwise its operation holding the most self time",
                     f"{mystery_assistant.ANSWER_HOW} (for example: tracequest answer assistant "
                     "assistant execute_tool route_eta)")
    traces = request.getfixturevalue("demo").assistant
    mystery_assistant.judge(traces, answer["service"], answer["operation"])
