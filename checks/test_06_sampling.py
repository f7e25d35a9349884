"""Quest 06, sampling. Part (a): head sampling that keeps a quarter of all traces, whole.

Part (a) sends 400 requests through frontend -> route and counts the traces
that survive. With a 25% sampler the count is binomial: mean 100, standard
deviation sqrt(400 * 0.25 * 0.75) = 8.7, so anything within four standard
deviations (66 to 134) passes; a correct solution fails about once in 16,000
runs. Then it calls route directly with hand-made traceparent headers, to see
whether route follows its caller's decision or makes its own.
"""

import math
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from tracequest.quests.describe import plural
from tracequest.quests.failure import fail

REQUESTS = 400
RATIO = 0.25
SIGMAS = 4
PROBES = 20  # direct calls to route per sampled flag


def expected_range(n: int = REQUESTS, p: float = RATIO, sigmas: float = SIGMAS) -> tuple[int, int]:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return math.ceil(mean - sigmas * sd), math.floor(mean + sigmas * sd)


@pytest.mark.quest("06a")
def test_part_a_head_sampling_keeps_a_quarter_of_traces_whole(run):
    """About 25% of requests leave a trace, every kept trace is whole, and route follows its caller."""
    route = run.app("route.py", name="route")
    frontend = run.app("frontend.py", name="frontend", env={"ROUTE_URL": route.url})
    run.start()
    _send_requests(frontend)
    followed, ignored = _probe_route(route)
    traces = run.traces()
    probes = set(followed) | set(ignored)
    ours = [t for t in traces if t.trace_id not in probes]

    low, high = expected_range()
    kept = [t for t in ours if t.find(service="frontend", kind="SERVER")]
    if not low <= len(kept) <= high:
        share = 100 * len(kept) / REQUESTS
        fail(f"about {RATIO:.0%} of the {REQUESTS} requests traced: between {low} and {high} traces",
             f"{len(kept)} of {REQUESTS} requests left a trace ({share:.0f}%).",
             "the SDK keeps every trace unless told otherwise: return a sampler from "
             "make_sampler() that keeps RATIO of traces, chosen by trace id."
             if len(kept) > high else
             "fewer traces than expected: check that the ratio you give the sampler is RATIO (0.25).")

    orphaned = [t for t in ours if not t.find(service="frontend") and t.find(service="route")]
    cut = [t for t in kept if not t.find(service="route", kind="SERVER")]
    if orphaned or cut:
        found = (f"route kept spans of {plural(len(orphaned), 'request')} whose root frontend dropped"
                 if orphaned else
                 f"{plural(len(cut), 'trace')} kept by frontend lack route's spans")
        fail("every trace whole: route's spans present exactly when frontend's root span is",
             found + ".",
             "both services must agree: a parent-based sampler (ParentBased) lets route follow "
             "the sampled flag in the traceparent header instead of deciding for itself.",
             trace=(orphaned or cut)[0])

    recorded = {t.trace_id for t in traces if t.find(service="route")}
    dropped = [tid for tid in followed if tid not in recorded]
    if dropped:
        fail("route to keep every request its caller sampled (traceparent ending in -01)",
             f"route dropped {len(dropped)} of {PROBES} such requests: it decides on its own "
             "instead of following its parent.",
             "wrap the ratio sampler in ParentBased(...): the ratio then applies only to root "
             "spans, and every other span follows its parent's decision.")
    kept_anyway = [tid for tid in ignored if tid in recorded]
    if kept_anyway:
        fail("route to drop every request its caller did not sample (traceparent ending in -00)",
             f"route recorded {len(kept_anyway)} of {PROBES} such requests anyway.",
             "wrap the ratio sampler in ParentBased(...), so route follows its parent's decision.")


# Part (b), tail sampling in the collector, adds its check here, marked quest("06b").


def _send_requests(frontend) -> None:
    def one(i: int) -> int:
        return frontend.get(f"/dispatch?customer={i}").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(one, range(REQUESTS)))
    bad = [c for c in codes if c != 200]
    if bad:
        fail(f"all {REQUESTS} requests to GET /dispatch to answer 200",
             f"{len(bad)} answered {sorted(set(bad))}.",
             "run route.py and frontend.py yourself and open http://127.0.0.1:5061/dispatch.",
             details=frontend.tail())


def _probe_route(route) -> tuple[list[str], list[str]]:
    """Call route as a caller that did (01) or did not (00) sample the trace.

    The trace ids are picked so that a 25% ratio sampler deciding on its own
    would do the opposite: sampled calls get ids it would drop, unsampled
    calls ids it would keep. Only a sampler that follows the parent gets both right.
    """
    rng = random.Random()
    followed, ignored = [], []
    for flag, ids, low, high in (("01", followed, 0.5, 1.0), ("00", ignored, 0.0, 0.2)):
        for _ in range(PROBES):
            trace_id = f"{rng.getrandbits(64):016x}{int(rng.uniform(low, high) * 2**64) % 2**64:016x}"
            parent = f"{rng.getrandbits(64) | 1:016x}"
            ids.append(trace_id)
            answer = route.get("/route?customer=probe",
                               headers={"traceparent": f"00-{trace_id}-{parent}-{flag}"})
            if answer.status_code != 200:
                fail("route to answer GET /route with 200", f"it answered {answer.status_code}.",
                     "run python route.py and open http://127.0.0.1:5062/route.",
                     details=route.tail())
    return followed, ignored
