"""Where the quests live: the repository, its checks, and the learner's labs.

Checks read the learner's code from ``labs/``. Setting ``TRACEQUEST_LABS_DIR``
points them at another folder of the same shape instead; the project's own
tests use that to run every check against ``solutions/`` and against wrong
solutions.
"""

from __future__ import annotations

import os
from pathlib import Path

from tracequest.errors import TraceQuestError
from tracequest.host.paths import find_repo_root

LABS_ENV = "TRACEQUEST_LABS_DIR"


class QuestSetupError(TraceQuestError):
    """The quests cannot run at all here; the message says what to do."""


def find_root(start: Path | None = None) -> Path:
    """The clone holding ``checks/`` and ``labs/`` (see :mod:`tracequest.host.paths`)."""
    root = find_repo_root(start)
    if root is None:
        raise QuestSetupError(
            "cannot find the Trace Quest folder (the one with checks/ and labs/). "
            "Run this command from inside your clone of the lab."
        )
    return root


def labs_dir(root: Path) -> Path:
    """The folder holding one sub-folder per quest: ``labs/`` unless overridden."""
    override = os.environ.get(LABS_ENV)
    return Path(override).resolve() if override else root / "labs"


def uses_own_labs(root: Path) -> bool:
    """True when the checks read the learner's own ``labs/`` (so progress counts)."""
    return labs_dir(root).resolve() == (root / "labs").resolve()
