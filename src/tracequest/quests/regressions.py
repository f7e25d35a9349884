"""Quest 12's world: the demo healthy and broken, and the learner's tests run against it.

A trace test earns its keep twice: it passes while the system is healthy,
and it fails when the property it guards breaks. So the check of quest 12
runs the demo in a few *variants*: healthy ones, with the fix flags in
different positions, and regressions, each a knob that breaks exactly one
property (``regression-*`` in ``services/common/knobs.py``). Each variant's
/dispatch traces are saved as an OTLP JSON file, and the learner's tests run
once against each file, plus once against no traces at all.

The learner's tests run in a pytest subprocess of their own, so their code
cannot break the check (:mod:`tracequest.quests.learner_tests`). They read the
traces through the fixtures defined here (``traces`` and ``fix_flags``); at
home, without a check around them, the same fixtures read the learner's
running lab instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import pytest

from services.common.knobs import KNOBS, SERVICES, as_env
from services.common.mystery import ENV as MYSTERY_ENV
from tracequest.errors import LabError
from tracequest.expect.failure import QuestFailure
from tracequest.expect.selection import select
from tracequest.host.ports import PortInUse, Ports
from tracequest.lab.home import find_home
from tracequest.lab.lab import Lab
from tracequest.lab.load import run_load
from tracequest.lab.settings import LabSettings
from tracequest.traces.client import QueryClient, QueryError
from tracequest.traces.model import Trace, group_traces
from tracequest.traces.otlp import decode_json, spans_from_request

# The traffic each variant gets: a few /dispatch requests, one at a time, so a
# trace shows one request's own concurrency and nothing queued behind another.
REQUESTS = 4
# The demo's random numbers are seeded, so every variant times out the same
# Redis reads: with this seed, three of the four requests have driver errors.
SEED = "12"
# How many labs start at once when the variants are recorded: all five. Starting
# a lab is mostly waiting, and even on two cores all at once beat three at a time.
PARALLEL_LABS = 5
# A test marks the regression it guards: @pytest.mark.guards("double-customer-call").
MARKER = "guards"
# Where recorded variants are kept between check runs, when set (the project's tests).
CACHE_ENV = "TRACEQUEST_VARIANT_TRACES"
NO_TRACES = "no-traces"


# --- the variants -------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One way to run the demo: knob settings over its defaults; a regression says what it breaks."""

    name: str
    title: str  # "the demo with its defaults", as a verdict names it
    settings: tuple[tuple[str, str], ...] = ()  # (knob name, value) pairs
    breaks: str = ""  # for a regression: the property it breaks, in words

    @property
    def healthy(self) -> bool:
        return not self.breaks

    @property
    def env(self) -> dict[str, str]:
        """The services' environment: every knob that shapes the demo, by its TQ_* twin.

        The defaults are written out too, so a TQ_* setting in the learner's shell,
        which the services would otherwise inherit, cannot change a variant.
        """
        shaping = {k.name: k.default for k in KNOBS
                   if k.group in ("fix", "failure", "delay") and set(k.readers) & set(SERVICES)}
        return as_env({**shaping, "seed": SEED, **dict(self.settings)})

    @property
    def fix_flags(self) -> dict:
        return fix_flags_of(self.env)


HEALTHY = (
    Variant("defaults", "the demo with its defaults"),
    Variant("all-fixes", "the demo with every fix on",
            (("fix-db-query-delay", "5ms"), ("fix-disable-db-conn-mutex", "on"),
             ("fix-route-worker-pool-size", "10"))),
)
# On top of the defaults, where the pool (3 workers) is smaller than the route calls (10).
REGRESSIONS = (
    Variant("double-customer-call", "the demo with regression double-customer-call",
            (("regression-double-customer-call", "on"),),
            "each /dispatch queries the customer database twice, not once"),
    Variant("unbounded-route-calls", "the demo with regression unbounded-route-calls",
            (("regression-unbounded-route-calls", "on"),),
            "all route calls of a /dispatch run at once, not at most as many as the route "
            "worker pool has workers"),
    Variant("error-without-exception", "the demo with regression error-without-exception",
            (("regression-error-without-exception", "on"),),
            "a driver span that ends in error carries no exception event"),
)
VARIANTS = HEALTHY + REGRESSIONS


def variant(name: str) -> Variant:
    return next(v for v in VARIANTS if v.name == name)


def regression_name(text: str) -> str:
    """What a guards marker names, as the regression's name: the knob's name works too."""
    return str(text).strip().removeprefix("--").removeprefix("regression-")


def fix_flags_of(env: dict[str, str]) -> dict:
    """The fix flags' values (by knob name) in a services' environment, defaults for the rest."""
    return {k.name: k.parse(env[k.env]) if k.env in env else k.default
            for k in KNOBS if k.group == "fix"}


# What each variant promises about its traces, proven before a learner's test
# is judged on them: a regression that did not show would judge the test unfairly.
def _one_customer_query_each(traces: list[Trace], flags: dict) -> None:
    for trace in traces:
        select(trace, service="customer", name="SELECT", kind="CLIENT").expect_count(exactly=1)


def _route_calls_within_the_pool(traces: list[Trace], flags: dict) -> None:
    calls = select(traces, service="route", kind="SERVER").parent(service="frontend", kind="CLIENT")
    calls.expect_count(at_least=len(traces)).expect_concurrency(at_most=flags["fix-route-worker-pool-size"])


def _driver_errors_with_exceptions(traces: list[Trace], flags: dict) -> None:
    select(traces, service="driver", status="ERROR").expect_event("exception")


PROMISES: dict[str, Callable[[list[Trace], dict], None]] = {
    "double-customer-call": _one_customer_query_each,
    "unbounded-route-calls": _route_calls_within_the_pool,
    "error-without-exception": _driver_errors_with_exceptions,
}


def broken_promises(v: Variant, traces: list[Trace]) -> list[str]:
    """What is wrong with a variant's traces: [] when it shows exactly what it should."""
    problems = []
    if len(traces) != REQUESTS or any(t.root.name != "GET /dispatch" for t in traces):
        problems.append(f"{len(traces)} traces instead of {REQUESTS} whole /dispatch traces")
    for name, promise in PROMISES.items():
        try:
            promise(traces, v.fix_flags)
            held = True
        except QuestFailure:
            held = False
        if held == (name == v.name):
            problems.append(f"the property regression {name} breaks {'held' if held else 'broke'}")
    return problems


# --- recording the variants ---------------------------------------------------

def record(v: Variant, path: Path, attempts: int = 2) -> Path:
    """Run the demo as `v` says, send it REQUESTS dispatches, save their traces as OTLP JSON."""
    for _ in range(attempts):  # a timing fluke may hide a regression once, not twice
        document = _run_demo(v)
        problems = broken_promises(v, load_traces(document))
        if not problems:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document))
            return path
    raise _broken_demo(v, "; ".join(problems))


def record_all(into: Path, variants: Iterable[Variant] = VARIANTS,
               parallel: int = PARALLEL_LABS) -> dict[str, Path]:
    """Every variant's traces file under `into`; a file already there is reused, not recorded."""
    paths = {v.name: into / f"{v.name}.json" for v in variants}
    missing = [v for v in variants if not paths[v.name].exists()]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for _ in pool.map(lambda v: record(v, paths[v.name]), missing):
            pass
    return paths


def variant_traces(into: Path) -> dict[str, Path]:
    """The check's traces: recorded under `into`, or read from $TRACEQUEST_VARIANT_TRACES if set."""
    cached = os.environ.get(CACHE_ENV)
    return record_all(Path(cached) if cached else into)


def _run_demo(v: Variant) -> dict:
    """The OTLP JSON of REQUESTS /dispatch traces from a throw-away lab running `v`."""
    # Whatever the learner's shell says, no mystery is on, and every request is traced
    # by every instrumentation.
    env = {**v.env, MYSTERY_ENV: "", "OTEL_TRACES_SAMPLER": "parentbased_always_on",
           "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ""}
    with tempfile.TemporaryDirectory(prefix=f"tracequest-{v.name}-") as home:
        lab = _start(v, home, env)
        try:
            done = run_load(lab.frontend_url, REQUESTS, 1, progress=None)
            lab.stop_services(log=lambda *_: None)  # they flush their spans as they stop
            if done.errors:
                found = ", ".join(f"{n} × {why}" for why, n in sorted(done.errors.items()))
                raise _broken_demo(v, f"of {REQUESTS} requests, some failed: {found}")
            return traces_document(QueryClient(lab.query_url), done.trace_ids)
        finally:
            lab.down(log=lambda *_: None)


def _start(v: Variant, home: str, env: dict, attempts: int = 3) -> Lab:
    """Start a lab on free ports; when another program takes a port first, try new ones."""
    for attempt in range(1, attempts + 1):
        lab = Lab(LabSettings(ports=Ports.free(), service_env=env), home)
        try:
            lab.up(log=lambda *_: None)  # stops what it started if it fails
            return lab
        except (LabError, PortInUse) as exc:
            if attempt == attempts:
                raise _broken_demo(v, f"the demo did not start: {exc}") from None


def traces_document(client: QueryClient, trace_ids: Iterable[str]) -> dict:
    """These traces as one OTLP JSON document, exactly as the backend sends them."""
    resource_spans = []
    for trace_id in trace_ids:
        resource_spans += (client.trace_json(trace_id).get("result") or {}).get("resourceSpans", [])
    return {"resourceSpans": resource_spans}


def load_traces(source: Path | str | dict) -> list[Trace]:
    """Traces from an OTLP JSON document or file, through the lab's one parser."""
    document = source if isinstance(source, dict) else Path(source).read_text()
    return group_traces(spans_from_request(decode_json(document)))


def _broken_demo(v: Variant, found: str) -> QuestFailure:
    return QuestFailure(
        f"{v.title} to answer {REQUESTS} requests and show its traces as it should",
        found + ".",
        "this is a problem with the lab on this machine, not with your tests: check that "
        "`tracequest up` works, then run the check again.",
    )


# --- the fixtures a learner's tests use ------------------------------------------

@dataclass(frozen=True)
class DemoRun:
    """One run of the demo as a test sees it: its traces file and the fix flags it ran with."""

    id: str
    traces_file: str  # OTLP JSON; "" for no traces at all
    fix_flags: dict = field(default_factory=dict)

    def traces(self) -> list[Trace]:
        return list(_cached_traces(self.traces_file)) if self.traces_file else []


@lru_cache(maxsize=None)
def _cached_traces(path: str) -> tuple[Trace, ...]:
    return tuple(load_traces(path))


LOCAL_TRACES = 20  # how many of your lab's newest /dispatch traces a test reads at home


@pytest.fixture(scope="session")
def demo_run() -> DemoRun:
    """Where the traces come from: in the check, one variant per run; at home, your lab."""
    lab = Lab.from_state(find_home())
    if lab is None:
        pytest.fail("no lab is running: start it with `tracequest up`, send it requests with "
                    "`tracequest load -n 20 -c 1`, then run your tests again.", pytrace=False)
    client = QueryClient(lab.query_url)
    try:
        found = client.find_traces("frontend", operation="GET /dispatch", lookback_s=3600,
                                   limit=LOCAL_TRACES)
        ids = [t.trace_id for t in found if t.root.name == "GET /dispatch"]
        if not ids:
            pytest.fail("your lab holds no /dispatch traces yet: send some with "
                        "`tracequest load -n 20 -c 1`.", pytrace=False)
        document = traces_document(client, ids)
    except QueryError as exc:
        pytest.fail(str(exc), pytrace=False)
    path = lab.home / "quest-12-traces.json"
    path.write_text(json.dumps(document))
    _cached_traces.cache_clear()
    return DemoRun("your-lab", str(path), fix_flags_of(lab.service_env))


@pytest.fixture(scope="session")
def traces(demo_run) -> list[Trace]:
    """The /dispatch traces of one run of the demo, newest first (tracequest.traces.model.Trace)."""
    return demo_run.traces()


@pytest.fixture(scope="session")
def fix_flags(demo_run) -> dict:
    """The fix flags that run used, by name: fix_flags["fix-route-worker-pool-size"] is 3 by default."""
    return dict(demo_run.fix_flags)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(name): the regression this test guards against")
