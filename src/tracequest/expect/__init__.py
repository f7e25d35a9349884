"""The trace-assertion vocabulary the quest checks and the learners' own trace tests speak.

Select spans by service, name, kind, status and attributes, walk parent,
child, descendant, ancestor and link relations, then assert counts, values,
durations and relations; a failing assertion raises :class:`QuestFailure`
(Expected, Found, Hint). ``from tracequest.expect import select, ANY, fail``
is its face.

May import: ``tracequest.traces`` and ``tracequest.errors``; never the lab,
the backend, the quests or the CLI.
"""

from tracequest.expect.failure import WIDTH, QuestFailure, fail
from tracequest.expect.matching import ANY, attribute_of, span_label
from tracequest.expect.selection import Selection, select

__all__ = ["ANY", "QuestFailure", "Selection", "WIDTH", "attribute_of", "fail", "select", "span_label"]
