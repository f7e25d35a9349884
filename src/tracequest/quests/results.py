"""What one run of the checks found, per check and per quest.

The pytest plugin fills these in; the board, the progress file and the
``tracequest check`` command read them. They travel between processes as JSON,
which is also what the project's own tests assert on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tracequest.quests.registry import Quest, all_quests


@dataclass
class CheckResult:
    quest_id: str
    nodeid: str
    title: str
    passed: bool
    message: str = ""  # the full mentor message (expected / found / hint)
    hint: str = ""
    seconds: float = 0.0


@dataclass
class QuestResult:
    quest_id: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> CheckResult | None:
        return next((c for c in self.checks if not c.passed), None)

    @property
    def hint(self) -> str:
        failure = self.first_failure
        return failure.hint if failure else ""


@dataclass
class RunResults:
    quests: dict[str, QuestResult] = field(default_factory=dict)
    xp_earned: int = 0
    badges_earned: list[str] = field(default_factory=list)
    progress_saved: bool = False

    def add(self, check: CheckResult) -> None:
        self.quests.setdefault(check.quest_id, QuestResult(check.quest_id)).checks.append(check)

    def in_quest_order(self) -> list[tuple[Quest, QuestResult]]:
        return [(q, self.quests[q.id]) for q in all_quests() if q.id in self.quests]

    @property
    def all_passed(self) -> bool:
        return bool(self.quests) and all(r.passed for r in self.quests.values())

    def to_json(self) -> dict:
        return {
            "quests": {qid: {"passed": r.passed, "hint": r.hint, "checks": [asdict(c) for c in r.checks]}
                       for qid, r in self.quests.items()},
            "xp_earned": self.xp_earned,
            "badges_earned": self.badges_earned,
            "progress_saved": self.progress_saved,
        }

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False))

    @classmethod
    def read(cls, path: Path) -> RunResults:
        data = json.loads(Path(path).read_text())
        results = cls(xp_earned=data["xp_earned"], badges_earned=data["badges_earned"],
                      progress_saved=data["progress_saved"])
        for entry in data["quests"].values():
            for check in entry["checks"]:
                results.add(CheckResult(**check))
        return results
