"""How a quest check says "not yet": expected, what the trace shows instead, one hint.

A learner should never have to read a stack trace to learn what a check wanted.
Checks raise :class:`QuestFailure`; the pytest plugin shows its text and nothing
else.
"""

from __future__ import annotations

import textwrap

from tracequest.errors import TraceQuestError

WIDTH = 88


class QuestFailure(TraceQuestError, AssertionError):
    """A check's verdict, in the words a mentor would use.

    A :class:`~tracequest.errors.TraceQuestError`, as every error the lab raises
    on purpose is, and an ``AssertionError``, since it is a failed assertion to
    pytest and to whatever catches one.
    """

    def __init__(self, expected: str, found: str, hint: str = "", details: str = ""):
        self.expected = expected
        self.found = found
        self.hint = hint
        self.details = details
        super().__init__(self.render())

    def render(self) -> str:
        lines = _labelled("Expected", self.expected) + _labelled("Found", self.found)
        if self.details:
            lines += ["", *("    " + line for line in self.details.rstrip().splitlines()), ""]
        if self.hint:
            lines += _labelled("Hint", self.hint)
        return "\n".join(lines)


def fail(expected: str, found: str, hint: str = "", trace=None, details: str = ""):
    """Raise a QuestFailure; with a trace, its waterfall shows what was found."""
    if trace is not None:
        details = trace.waterfall(width=WIDTH)
    raise QuestFailure(expected, found, hint, details)


def _labelled(label: str, text: str) -> list[str]:
    """`Label:   text`, wrapped so later lines line up under the text."""
    prefix = f"{label + ':':<10}"
    wrapped = textwrap.wrap(" ".join(text.split()), WIDTH - len(prefix)) or [""]
    return [prefix + wrapped[0], *(" " * len(prefix) + line for line in wrapped[1:])]
