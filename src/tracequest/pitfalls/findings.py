"""A doctor's finding: what it looked at, what it found, and what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report.

    ``code`` names the problem for scripts and tests (``--json``); a passing
    finding has the code ``ok`` and no fix.
    """

    ok: bool
    topic: str   # environment, packages, ports, round trip, collector config, run
    found: str
    fix: str = ""
    code: str = "ok"

    def line(self, marks: tuple[str, str] = ("✓", "✗")) -> str:
        mark = marks[0] if self.ok else marks[1]
        text = f"{mark} {self.topic}: {self.found}"
        return text if self.ok or not self.fix else f"{text} → {self.fix}"

    def as_dict(self) -> dict:
        return asdict(self)


def good(topic: str, found: str) -> Finding:
    return Finding(True, topic, found)


def bad(topic: str, code: str, found: str, fix: str) -> Finding:
    return Finding(False, topic, found, fix, code)
