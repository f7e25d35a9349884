"""Run the demo with a mystery on, send it load, and hand back its traces.

The check of quest 03 does this with the learner's seed, and the project's
tests do it with every culprit. The lab it starts is a lab of its own: a
temporary home, free ports, the embedded backend. A lab the learner has
running is never touched.

The load is the two halves of the mystery at once: /dispatch requests, and a
few questions to the assistant through the frontend's ``POST /ask`` (the
page's ask box). They run side by side, so the check takes about as long as the
slower of the two.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests as http

from tracequest.errors import LabError
from tracequest.expect.failure import QuestFailure
from tracequest.host.ports import PortInUse, Ports
from tracequest.host.procs import until
from tracequest.lab.lab import Lab
from tracequest.lab.load import run_load
from tracequest.lab.settings import LabSettings
from tracequest.quests.mystery import mystery_env
from tracequest.traces.client import QueryClient
from tracequest.traces.model import Trace

# The load the check sends, the same shape the README asks the learner for:
# requests must overlap, or a queue never forms.
REQUESTS = 12
CONCURRENCY = 4
# Questions to the assistant (question, customer), asked all at once. Each question
# takes several model calls, so three traces are enough to vote on.
QUESTIONS = (("why is my driver late?", "123"), ("which drivers are near me?", "392"),
             ("when will my driver arrive?", "567"))
ASK_TIMEOUT = 90.0  # an agent that loops to its cap over a slow service takes a while
# The programs a /dispatch touches, and those a question to the assistant adds.
DISPATCH_SERVICES = ("customer", "driver", "route", "frontend")
ASSISTANT_SERVICES = ("model", "assistant")


@dataclass
class MysteryRun:
    """The traces of one run: the /dispatch requests', and the questions to the assistant."""

    dispatch: list[Trace]
    assistant: list[Trace]


def run_mystery(seed: int, requests: int = REQUESTS, concurrency: int = CONCURRENCY,
                backend: str = "embedded", questions: tuple = QUESTIONS) -> MysteryRun:
    """The traces of `requests` /dispatch requests and of `questions` to the demo running mystery `seed`.

    With no questions, the model server and the assistant are not started at all.
    """
    # Whatever the learner's shell says, every request is traced and every
    # instrumentation is on: the check must see whole traces.
    env = {**mystery_env(seed), "OTEL_TRACES_SAMPLER": "parentbased_always_on",
           "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ""}
    services = DISPATCH_SERVICES + (ASSISTANT_SERVICES if questions else ())
    with tempfile.TemporaryDirectory(prefix="tracequest-mystery-") as home:
        lab = _start(home, env, backend, services)
        try:
            client = QueryClient(lab.query_url)
            with ThreadPoolExecutor(max_workers=1) as pool:
                asked = pool.submit(_ask, lab.frontend_url, questions)
                errors = dict(run_load(lab.frontend_url, requests, concurrency, progress=None).errors)
                for reason, count in asked.result().items():
                    errors[reason] = errors.get(reason, 0) + count
            # A root span ends just after its answer is sent: let every one be exported
            # before SIGTERM, which would shut the exporter down under a span still open.
            until(lambda: len(_dispatch_traces(client, requests)) >= requests
                  and len(_ask_traces(client, len(questions))) >= len(questions), timeout=10, interval=0.2)
            lab.stop_services(log=lambda *_: None)  # they flush the rest of their spans as they stop
            run = MysteryRun(_dispatch_traces(client, requests), _ask_traces(client, len(questions)))
        finally:
            lab.down(log=lambda *_: None)
    if errors:
        found = ", ".join(f"{count} × {reason}" for reason, count in sorted(errors.items()))
        raise _broken_demo(f"of {requests} requests and {len(questions)} questions, some failed: {found}")
    if len(run.dispatch) < requests:
        raise _broken_demo(f"only {len(run.dispatch)} traces of {requests} requests reached the backend")
    if len(run.assistant) < len(questions):
        raise _broken_demo(f"only {len(run.assistant)} traces of {len(questions)} questions to the "
                           "assistant reached the backend")
    return run


def _start(home: str, env: dict, backend: str, services: tuple, attempts: int = 3) -> Lab:
    """Start a lab on free ports; when another program takes a port first, try new ones."""
    for attempt in range(1, attempts + 1):
        lab = Lab(LabSettings(backend=backend, ports=Ports.free(), service_env=env, services=services), home)
        try:
            lab.up(log=lambda *_: None)  # stops what it started if it fails
            return lab
        except (LabError, PortInUse) as exc:
            if attempt == attempts:
                raise _broken_demo(f"the demo did not start: {exc}") from None


def _ask(frontend_url: str, questions: tuple) -> dict[str, int]:
    """Ask every question at once, as the page's ask box does; failures by reason."""
    def one(question: str, customer: str) -> str | None:
        try:
            answer = http.post(f"{frontend_url}/ask", json={"question": question, "customer": customer},
                               timeout=ASK_TIMEOUT)
        except http.RequestException as exc:
            return f"POST /ask: {type(exc).__name__}"
        return None if answer.status_code == 200 else f"POST /ask: HTTP {answer.status_code}"

    errors: dict[str, int] = {}
    if not questions:
        return errors
    with ThreadPoolExecutor(max_workers=len(questions)) as pool:
        for reason in pool.map(lambda q: one(*q), questions):
            if reason:
                errors[reason] = errors.get(reason, 0) + 1
    return errors


def _dispatch_traces(client: QueryClient, requests: int) -> list[Trace]:
    """The /dispatch traces, read through the query API, so any backend will do."""
    found = client.find_traces("frontend", operation="GET /dispatch", lookback_s=600,
                               limit=requests * 2)
    return [t for t in found if t.root.name == "GET /dispatch"]


def _ask_traces(client: QueryClient, questions: int) -> list[Trace]:
    """The traces of the questions to the assistant, each rooted at the frontend's POST /ask."""
    if not questions:
        return []
    found = client.find_traces("frontend", operation="POST /ask", lookback_s=600, limit=questions * 2)
    return [t for t in found if t.root.name == "POST /ask"]


def _broken_demo(found: str) -> QuestFailure:
    return QuestFailure(
        "the demo, run with your mystery, to answer every request and send its traces",
        found + ".",
        "this is a problem with the lab on this machine, not with your answer: check that "
        "`tracequest up` works, then run the check again.",
    )
