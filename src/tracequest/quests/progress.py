"""The learner's progress: completed quests, XP and badges, in ``progress.json``.

It lives in the lab home (``.tracequest/``) so it survives ``make down`` and
stays out of git. XP for a quest is awarded once, the first time it passes;
a later failure shows on the board but takes nothing away.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tracequest.quests.registry import BADGES, Badge, Quest

FILE_NAME = "progress.json"


@dataclass
class Progress:
    path: Path
    completed: dict[str, dict] = field(default_factory=dict)  # id -> {"xp", "at"}
    badges: list[str] = field(default_factory=list)
    last_hints: dict[str, str] = field(default_factory=dict)  # id -> hint of the last failure

    @classmethod
    def load(cls, home: Path) -> Progress:
        path = Path(home) / FILE_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)
        return cls(path, dict(data.get("completed", {})), list(data.get("badges", [])),
                   dict(data.get("last_hints", {})))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"completed": self.completed, "xp": self.xp, "badges": self.badges,
                "last_hints": self.last_hints}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        tmp.replace(self.path)

    @property
    def xp(self) -> int:
        return sum(entry.get("xp", 0) for entry in self.completed.values())

    def is_complete(self, quest_id: str) -> bool:
        return quest_id in self.completed

    def record(self, quest: Quest, passed: bool, hint: str = "") -> tuple[int, list[Badge]]:
        """Note one quest's result; returns the XP and badges this result newly earned."""
        if not passed:
            if hint:
                self.last_hints[quest.id] = hint
            return 0, []
        self.last_hints.pop(quest.id, None)
        if quest.id in self.completed:
            return 0, []
        self.completed[quest.id] = {"xp": quest.xp, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        return quest.xp, self._award_badges()

    def _award_badges(self) -> list[Badge]:
        earned = [b for b in BADGES
                  if b.name not in self.badges and all(q in self.completed for q in b.requires)]
        self.badges += [b.name for b in earned]
        return earned
