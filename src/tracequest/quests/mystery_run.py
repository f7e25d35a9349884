"""Run the demo with a mystery on, send it load, and hand back its traces.

The check of quest 03 does this with the learner's seed, and the project's
tests do it with every culprit. The lab it starts is a lab of its own: a
temporary home, free ports, the embedded backend. A lab the learner has
running is never touched.
"""

from __future__ import annotations

import tempfile

from ..client import QueryClient
from ..lab import Lab, LabError, LabSettings
from ..load import run_load
from ..model import Trace
from ..ports import PortInUse, Ports
from ..procs import until
from .failure import QuestFailure
from .mystery import mystery_env

# The load the check sends, the same shape the README asks the learner for:
# requests must overlap, or a queue never forms.
REQUESTS = 12
# The programs a /dispatch touches: the mystery's lab needs no assistant.
DISPATCH_SERVICES = ("customer", "driver", "route", "frontend")
CONCURRENCY = 4


def run_mystery(seed: int, requests: int = REQUESTS, concurrency: int = CONCURRENCY,
                backend: str = "embedded") -> list[Trace]:
    """The /dispatch traces of `requests` requests to the demo running mystery `seed`."""
    # Whatever the learner's shell says, every request is traced and every
    # instrumentation is on: the check must see whole traces.
    env = {**mystery_env(seed), "OTEL_TRACES_SAMPLER": "parentbased_always_on",
           "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ""}
    with tempfile.TemporaryDirectory(prefix="tracequest-mystery-") as home:
        lab = _start(home, env, backend)
        try:
            client = QueryClient(lab.query_url)
            errors = run_load(lab.frontend_url, requests, concurrency, progress=None).errors
            # A root span ends just after its answer is sent: let every one be exported
            # before SIGTERM, which would shut the exporter down under a span still open.
            until(lambda: len(_dispatch_traces(client, requests)) >= requests, timeout=10, interval=0.2)
            lab.stop_services(log=lambda *_: None)  # they flush the rest of their spans as they stop
            traces = _dispatch_traces(client, requests)
        finally:
            lab.down(log=lambda *_: None)
    if errors:
        found = ", ".join(f"{count} × {reason}" for reason, count in sorted(errors.items()))
        raise _broken_demo(f"of {requests} requests, some failed: {found}")
    if len(traces) < requests:
        raise _broken_demo(f"only {len(traces)} traces of {requests} requests reached the backend")
    return traces


def _start(home: str, env: dict, backend: str, attempts: int = 3) -> Lab:
    """Start a lab on free ports; when another program takes a port first, try new ones."""
    for attempt in range(1, attempts + 1):
        lab = Lab(LabSettings(backend=backend, ports=Ports.free(), service_env=env,
                              services=DISPATCH_SERVICES), home)
        try:
            lab.up(log=lambda *_: None)  # stops what it started if it fails
            return lab
        except (LabError, PortInUse) as exc:
            if attempt == attempts:
                raise _broken_demo(f"the demo did not start: {exc}") from None


def _dispatch_traces(client: QueryClient, requests: int) -> list[Trace]:
    """The /dispatch traces, read through the query API, so any backend will do."""
    found = client.find_traces("frontend", operation="GET /dispatch", lookback_s=600,
                               limit=requests * 2)
    return [t for t in found if t.root.name == "GET /dispatch"]


def _broken_demo(found: str) -> QuestFailure:
    return QuestFailure(
        "the demo, run with your mystery, to answer every request and send its traces",
        found + ".",
        "this is a problem with the lab on this machine, not with your answer: check that "
        "`tracequest up` works, then run the check again.",
    )
