"""The one root of every error the lab raises on purpose: :class:`TraceQuestError`.

Each subclass carries a message written for a learner (what is wrong and what
to do), so the CLI catches the root once and prints the message, and no layer
re-raises another's error just to change its class. Errors of other packages
(the knob table's ``KnobError``, ``OSError``) are turned into one of these only
where they cross into the library.

May import: nothing of the library; every other package may import it.
"""

from __future__ import annotations


class TraceQuestError(Exception):
    """Something a learner or instructor must fix; the message says what and how."""


class LabError(TraceQuestError):
    """Something a learner must fix before the lab can run; the message says what."""
