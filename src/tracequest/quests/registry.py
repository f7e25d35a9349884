"""The quests, in the order a learner meets them, and the badges they earn.

A quest's id is what the learner types (`tracequest check 04`). A quest that
comes in parts gives each part its own id and line on the board (06a, 06b),
sharing one lab folder and one check file.

Quests 06b, 07 and 09 are solved in a collector.yaml, not in Python; their
checks run it in the real collector (see ``collector_run``).

Most quests are solved by editing code in ``labs/``. Quest 03 is solved by
investigating: its folder holds only a README, and the learner answers with
``tracequest answer`` (``has_code`` is False). Quest 12 is solved by writing
tests: its check runs them against the demo, healthy and with regressions
injected (see ``regressions``).
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("novice", "intermediate", "advanced", "bonus")


@dataclass(frozen=True)
class Quest:
    id: str
    slug: str
    title: str
    level: str
    xp: int
    goal: str
    folder: str = ""  # under labs/ and solutions/; defaults to "<id>-<slug>"
    has_code: bool = True  # False: nothing to edit in labs/, the answer is a command

    @property
    def lab_folder(self) -> str:
        return self.folder or f"{self.id}-{self.slug}"

    @property
    def number(self) -> str:
        """The quest without its part letter: 06a -> 06."""
        return self.id.rstrip("abcdefghijklmnopqrstuvwxyz")

    @property
    def check_file(self) -> str:
        return f"test_{self.lab_folder.replace('-', '_')}.py"


QUESTS: tuple[Quest, ...] = (
    Quest("01", "first-trace", "Your first trace", "novice", 100,
          "Set up the SDK so a Flask service sends its traces over OTLP, under its own name."),
    Quest("02", "manual-span", "A span of your own", "intermediate", 150,
          "Wrap slow business logic in a manual span with attributes and an event."),
    Quest("03", "mystery", "Find the slow span", "intermediate", 200,
          "Find the operation that holds a slow request's time, and what troubles the "
          "assistant, from their traces alone.",
          has_code=False),
    Quest("04", "propagation", "Carry the context", "advanced", 250,
          "Join two services into one trace with inject() and extract()."),
    Quest("05", "errors", "When things break", "bonus", 150,
          "Record an exception, set error status, use semantic-convention names."),
    Quest("06a", "sampling", "Head sampling", "bonus", 150,
          "Keep a quarter of all traces, and keep every trace whole.", folder="06-sampling"),
    Quest("06b", "sampling", "Tail sampling", "bonus", 150,
          "In the collector, keep every error, every trace over 500 ms, and a tenth of the rest.",
          folder="06-sampling"),
    Quest("07", "collector", "Through the Collector", "bonus", 200,
          "Route traces through a collector that guards its memory, batches, and scrubs user.email."),
    Quest("08", "baggage-and-links", "Baggage and links", "bonus", 200,
          "Carry a value across three services; link a consumer to its producer."),
    Quest("09", "two-backends", "Two backends and a metric", "bonus", 200,
          "Send every trace to Jaeger and Zipkin from one collector, and count the calls "
          "with the spanmetrics connector."),
    Quest("10", "broken-services", "Three broken services", "advanced", 250,
          "Make a shop's traces whole again: an HTTP client, a thread pool, an exporter."),
    Quest("11", "agent-loop", "Trace an agent loop", "advanced", 250,
          "Give an LLM agent's loop, model calls and tools their spans, with GenAI token "
          "counts and each call's cost."),
    Quest("12", "trace-test", "Your own trace test", "advanced", 250,
          "Write pytest tests on the demo's traces that pass when it is healthy "
          "and fail on each regression they guard."),
)


@dataclass(frozen=True)
class Badge:
    name: str
    description: str
    requires: tuple[str, ...]  # quest ids, all needed


BADGES: tuple[Badge, ...] = (
    Badge("First Light", "sent a first trace", ("01",)),
    Badge("Sleuth", "found where a slow request's time goes", ("03",)),
    Badge("Span Smith", "shaped spans by hand: names, attributes, events, errors", ("02", "05")),
    Badge("Context Carrier", "kept one request in one trace across services", ("04", "08")),
    Badge("Sampler", "kept traces whole while keeping only some", ("06a",)),
    Badge("Pipeline Keeper", "sampled and scrubbed traces in the collector", ("06b", "07")),
    Badge("Switchboard", "sent every trace to two backends and counted it on the way", ("09",)),
    Badge("Regression Guard", "wrote trace tests that catch what breaks", ("12",)),
)


def all_quests() -> tuple[Quest, ...]:
    return QUESTS


def get_quest(quest_id: str) -> Quest:
    """The quest for an id as a learner might type it: 1, 01, 06a, or the slug."""
    wanted = _normalise(quest_id)
    for quest in QUESTS:
        if wanted in (quest.id, quest.slug, quest.lab_folder):
            return quest
    raise KeyError(quest_id)


def select(quest_ids: list[str]) -> list[Quest]:
    """Quests for ids as typed; a bare number picks every part (06 -> 06a, 06b)."""
    chosen: list[Quest] = []
    for text in quest_ids:
        wanted = _normalise(text)
        matches = [q for q in QUESTS if wanted in (q.id, q.number, q.slug, q.lab_folder)]
        if not matches:
            known = ", ".join(q.id for q in QUESTS)
            raise KeyError(f"no quest {text!r}; the quests are {known}")
        chosen += [q for q in matches if q not in chosen]
    return chosen


def _normalise(text: str) -> str:
    text = text.strip().lower()
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits and text.startswith(digits) and len(digits) < 2:
        text = "0" + text
    return text
