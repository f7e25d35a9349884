"""What every quest check shares: a fresh world to run the learner's code in.

Each check asks for ``run``: an embedded trace backend inside the test process
and a place to start the learner's programs from ``labs/<quest>/``. When the
check ends, every program it started is stopped and the backend is closed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tracequest.quests.harness import QuestRun
from tracequest.quests.paths import labs_dir
from tracequest.quests.plugin import quest_id_of
from tracequest.quests.registry import get_quest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run(request):
    """The quest's lab folder, ready to start programs from, with a backend listening."""
    quest = get_quest(quest_id_of(request.node))
    with QuestRun(labs_dir(ROOT) / quest.lab_folder) as quest_run:
        yield quest_run
