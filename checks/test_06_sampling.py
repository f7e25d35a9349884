"""Quest 06, sampling. Part (a): head sampling in the SDK. Part (b): tail sampling in the collector.

Part (a) sends 400 requests through frontend -> route and counts the traces
that survive. With a 25% sampler the count is binomial: mean 100, standard
deviation sqrt(400 * 0.25 * 0.75) = 8.7, so anything within four standard
deviations (66 to 134) passes; a correct solution fails about once in 16,000
runs. Then it calls route directly with hand-made traceparent headers, to see
whether route follows its caller's decision or makes its own.

Part (b) runs the learner's collector.yaml in the real collector in front of
the real Jaeger and sends it a designed mix: 20 traces with an error, 20 that
last 800 ms, 1,000 ordinary ones (10 ms, no error). Every error and every slow
trace must reach Jaeger. The ordinary ones kept are binomial: mean 100,
standard deviation sqrt(1000 * 0.1 * 0.9) = 9.5, and four of those either side
(63 to 137) pass, with the same odds as part (a).
"""

import math
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from tracequest.quests.collector_config import CollectorConfig
from tracequest.quests.collector_run import CollectorRun
from tracequest.expect import select
from tracequest.expect.failure import fail
from tracequest.lab.mix import MIX_ATTRIBUTE, MIX_SERVICE, kept_by_kind, send_mix

REQUESTS = 400
RATIO = 0.25
SIGMAS = 4
PROBES = 20  # direct calls to route per sampled flag


def expected_range(n: int = REQUESTS, p: float = RATIO, sigmas: float = SIGMAS) -> tuple[int, int]:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return math.ceil(mean - sigmas * sd), math.floor(mean + sigmas * sd)


SAMPLER = "ParentBased(root=TraceIdRatioBased(RATIO))"
ID_LIMIT = 2 ** 64           # a ratio sampler compares the low 64 bits of a trace id...
HIGHEST_BELOW = 0.2          # ...and of ~100 kept traces, one reaches above 0.2 of that range
                             # unless the ratio is lower (odds of missing it: 0.8^100, 2e-10)


def low_bits(span) -> float:
    """Where a trace id falls in the ratio sampler's range: its low 64 bits, as a share."""
    return (int(span.trace_id, 16) % ID_LIMIT) / ID_LIMIT


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
    kept = select(ours, service="frontend", kind="SERVER").named("frontend's request spans (the traces kept)")
    share = f"{len(kept)} of {REQUESTS} requests left a trace ({100 * len(kept) / REQUESTS:.0f}%)"
    kept.expect_count(at_least=low, at_most=high, hint=(
        f"{share}. The SDK keeps every trace unless told otherwise: return a sampler from "
        f"make_sampler() that keeps RATIO (0.25) of traces, chosen by trace id: {SAMPLER}."
        if len(kept) > high else
        f"{share}: fewer traces than expected. Check that the ratio you give the sampler is "
        f"RATIO (0.25): {SAMPLER}."))
    # The ratio itself, not only a count near it: a 25% trace-id sampler keeps exactly the
    # traces whose ids fall in the lowest quarter of the range, and reaches close to its top.
    kept.matching(lambda s: low_bits(s) >= RATIO, "whose trace id a 25% ratio sampler drops") \
        .named("kept traces that a 25% ratio sampler would have dropped") \
        .expect_count(exactly=0, hint=_ratio_hint(kept, "more"))
    kept.matching(lambda s: low_bits(s) >= HIGHEST_BELOW, f"in the top {RATIO - HIGHEST_BELOW:.0%} of its range") \
        .named(f"kept traces whose ids fall between {HIGHEST_BELOW:.0%} and {RATIO:.0%} of the id range") \
        .expect_count(at_least=1, hint=_ratio_hint(kept, "fewer"))

    whole_hint = ("both services must agree: a parent-based sampler (ParentBased) lets route follow "
                  "the sampled flag in the traceparent header instead of deciding for itself.")
    select(ours, service="route", kind="SERVER") \
        .named("route's SERVER spans") \
        .expect_in_trace_of(kept, hint=f"route kept spans of requests whose root frontend dropped: {whole_hint}")
    kept.descendants(service="route", kind="SERVER").named("route's SERVER span under each kept request") \
        .expect_count(at_least=1, per_trace=True, hint=f"traces kept by frontend lack route's spans: {whole_hint}")

    probed = select(traces, service="route", kind="SERVER")
    seen = {s.trace_id for s in probed}
    dropped = sum(tid not in seen for tid in followed)
    probed.matching(lambda s: s.trace_id in followed, "called with traceparent ...-01") \
        .named("route's SERVER spans of the requests its caller sampled (traceparent ending in -01)") \
        .expect_count(exactly=PROBES, hint=(
            f"route dropped {dropped} of {PROBES} requests its caller sampled: it decides on its own "
            "instead of following its parent. Wrap the ratio sampler in ParentBased(...): the ratio "
            "then applies only to root spans, and every other span follows its parent's decision."))
    probed.matching(lambda s: s.trace_id in ignored, "called with traceparent ...-00") \
        .named("route's SERVER spans of the requests its caller did not sample (traceparent ending in -00)") \
        .expect_count(exactly=0, hint=(
            "route recorded requests its caller did not sample: wrap the ratio sampler in "
            "ParentBased(...), so route follows its parent's decision."))


def _ratio_hint(kept, what: str) -> str:
    top = max((low_bits(s) for s in kept), default=0.0)
    return (f"your sampler keeps {what} than a quarter of trace ids: the highest kept id sits at "
            f"{top:.0%} of the range, where a 25% ratio sampler keeps ids below 25% and comes "
            f"close to it. Keep RATIO (0.25) as it is: {SAMPLER}.")


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


# --- part (b): tail sampling in the collector ---------------------------------

MIX = {"error": 20, "slow": 20, "normal": 1000}
TAIL_RATIO = 0.10
THRESHOLD_MS = 500
# Traffic on both sides of the threshold, so only a threshold of (about) 500 ms passes:
# 520 ms traces must all be kept; 480 ms ones are ordinary (a tenth, ~2 of 20, kept).
NEAR = {"just-slow": THRESHOLD_MS + 20, "just-quick": THRESHOLD_MS - 20}
NEAR_COUNT = 20
NEAR_QUICK_MOST = 10     # a 10% sample keeps more than 10 of 20 about once in 10^5 runs
DECISION_WAIT = "1s"     # what the check sets TQ_TAIL_DECISION_WAIT to
LONGEST_WAIT_S = 10      # a decision_wait the check is willing to sit through


@pytest.mark.quest("06b")
def test_part_b_tail_sampling_keeps_errors_slow_traces_and_a_tenth_of_the_rest(run):
    """Your collector keeps errors, slow traces and about 10% of the rest."""
    wait = {"TQ_TAIL_DECISION_WAIT": DECISION_WAIT}
    with CollectorRun(run.folder / "collector.yaml", env=wait) as collector:
        collector.validate()
        config = CollectorConfig.read(collector.config)
        env = collector.environment()
        pipeline = config.traces_pipeline()
        _check_tail_sampling_before_batch(pipeline)
        batches = pipeline.processors_of_kind("batch")
        waits = _decision_wait_s(config, pipeline, env) + (
            config.duration_s("processors", batches[0], "timeout", env, 0.2) if batches else 0)
        collector.start()
        send_mix(collector.otlp_endpoint, {**MIX, **{kind: NEAR_COUNT for kind in NEAR}},
                 lasting_ms=NEAR)
        kept_by_kind(collector.client, not_before=waits + 1.5, settle=2.0, timeout=waits + 20)
        traces = collector.client.find_traces(MIX_SERVICE, lookback_s=600, limit=100_000)
        _judge_what_was_kept(traces, config, pipeline, collector)


def _check_tail_sampling_before_batch(pipeline) -> None:
    order = pipeline.processors
    samplers = pipeline.processors_of_kind("tail_sampling")
    batches = pipeline.processors_of_kind("batch")
    if samplers and batches and order.index(samplers[0]) > order.index(batches[0]):
        fail("tail_sampling before batch in service.pipelines.traces.processors",
             f"{pipeline.shown()}: tail_sampling sits after batch.",
             "processors run in the order listed. Put tail_sampling in front of batch, so batch "
             "groups only the traces that are kept, instead of batching every span just before "
             "most of them are dropped.")


def _decision_wait_s(config: CollectorConfig, pipeline, env: dict) -> float:
    """How long the sampler holds a trace, in seconds (0 when nothing samples)."""
    samplers = pipeline.processors_of_kind("tail_sampling")
    if not samplers:
        return 0.0
    written = config.section("processors").get(samplers[0], {}).get("decision_wait")
    seconds = config.duration_s("processors", samplers[0], "decision_wait", env, 30.0)
    if seconds > LONGEST_WAIT_S:
        shown = "not set, so the default of 30s applies" if written is None else f"{written}"
        fail("a decision_wait the check can shorten: ${env:TQ_TAIL_DECISION_WAIT:-5s}",
             f"decision_wait is {shown}: the check would wait {seconds:g} s before the first "
             "trace reached Jaeger.",
             "write decision_wait: ${env:TQ_TAIL_DECISION_WAIT:-5s} under tail_sampling. It keeps "
             f"5 s when you run the collector yourself; the check sets {DECISION_WAIT}.")
    return seconds


def _judge_what_was_kept(traces, config: CollectorConfig, pipeline, collector) -> None:
    sent = sum(MIX.values()) + NEAR_COUNT * len(NEAR)
    mix = select(traces, name="GET /mix")

    def kept(kind: str, label: str):
        return mix.where(attributes={MIX_ATTRIBUTE: kind}).named(label)

    if not mix:
        fail(f"Jaeger to receive some of the {sent} traces sent to your collector",
             "it received none of them.",
             "the pipeline must still end in the otlp/jaeger exporter, as in the starter, and at "
             "least one policy must keep something. The collector's output below may say more.",
             details=collector.log_tail())
    normal = kept("normal", f"the {MIX['normal']} ordinary traces (10 ms, no error)")
    low, high = expected_range(MIX["normal"], TAIL_RATIO)
    if not pipeline.processors_of_kind("tail_sampling"):
        _no_sampler(len(normal), config, pipeline)

    policies = _policies(config, pipeline)
    kept("error", f"the {MIX['error']} traces with an error").expect_count(
        exactly=MIX["error"], hint="errors were dropped: " + _error_hint(policies))
    kept("slow", f"the {MIX['slow']} traces of 800 ms").expect_count(
        exactly=MIX["slow"], hint="slow traces were dropped: " + _slow_hint(policies))
    kept("just-slow", f"the {NEAR_COUNT} traces of {NEAR['just-slow']} ms, just over the threshold") \
        .expect_count(exactly=NEAR_COUNT, hint=f"traces just over {THRESHOLD_MS} ms were dropped: "
                      + _slow_hint(policies))
    # The 1000 ordinary traces measure the sampling rate; only then can 20 traces just under
    # the threshold tell a wrong threshold from a high rate.
    normal.expect_count(at_least=low, at_most=high, hint=(
        f"{len(normal)} of {MIX['normal']} ordinary traces were kept "
        f"({100 * len(normal) / MIX['normal']:.0f}%). "
        + (_too_many_hint(policies) if len(normal) > high else _too_few_hint(policies))))
    kept("just-quick", f"the {NEAR_COUNT} traces of {NEAR['just-quick']} ms, just under the threshold") \
        .expect_count(at_most=NEAR_QUICK_MOST,
                      hint=f"traces just under {THRESHOLD_MS} ms were kept as if slow: "
                      + _threshold_hint(policies))


def _no_sampler(normal: int, config: CollectorConfig, pipeline) -> None:
    """The pipeline has no tail_sampling processor: say whether one is defined but unlisted."""
    defined = list(config.defined("processors", "tail_sampling"))
    found = (f"all {normal} ordinary traces were kept: nothing is sampling yet"
             if normal == MIX["normal"] else
             f"{normal} of {MIX['normal']} ordinary traces were kept, and the pipeline has no "
             "tail_sampling processor")
    if defined:
        fail("a tail_sampling processor in the traces pipeline",
             f"{found}. {defined[0]} is defined under processors, but the pipeline does not "
             f"list it ({pipeline.shown()}).",
             f"add {defined[0]} to service.pipelines.traces.processors, before batch: a "
             "processor does nothing until a pipeline lists it.")
    fail("a tail_sampling processor in the traces pipeline", found + ".",
         "add a tail_sampling processor under processors, with a status_code, a latency and "
         "a probabilistic policy, and list it in the pipeline before batch.")


def _threshold_hint(policies: list[dict]) -> str:
    for policy in _of_type(policies, "latency"):
        threshold = _number(_setting(policy, "threshold_ms"))
        if threshold is not None and threshold < THRESHOLD_MS:
            return (f"your latency policy {policy.get('name', '')!r} has threshold_ms: {threshold:g}; "
                    f"make it {THRESHOLD_MS}, so only traces longer than {THRESHOLD_MS} ms count as slow.")
    return _too_many_hint(policies)


def _policies(config: CollectorConfig, pipeline) -> list[dict]:
    """The top-level policies of the pipeline's tail_sampling processor."""
    name = pipeline.processors_of_kind("tail_sampling")[0]
    found = config.section("processors").get(name, {}).get("policies") or []
    return [p for p in found if isinstance(p, dict)]


def _of_type(policies: list[dict], kind: str) -> list[dict]:
    return [p for p in policies if p.get("type") == kind]


def _setting(policy: dict, key: str):
    return (policy.get(policy.get("type")) or {}).get(key)


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _error_hint(policies: list[dict]) -> str:
    status = _of_type(policies, "status_code")
    if status:
        codes = _setting(status[0], "status_codes")
        return (f"your status_code policy {status[0].get('name', '')!r} keeps status_codes: {codes}; "
                "a trace should be kept when any of its spans ended with ERROR: status_codes: [ERROR].")
    return ("add a policy of type status_code with status_codes: [ERROR]. "
            "A trace is kept when any policy keeps it, so errors survive whatever the "
            "probabilistic policy decides.")


def _slow_hint(policies: list[dict]) -> str:
    latency = _of_type(policies, "latency")
    if latency:
        threshold = _setting(latency[0], "threshold_ms")
        return (f"your latency policy {latency[0].get('name', '')!r} has threshold_ms: {threshold}; "
                f"make it {THRESHOLD_MS}, so every trace longer than {THRESHOLD_MS} ms is kept.")
    return (f"add a policy of type latency with threshold_ms: {THRESHOLD_MS}. "
            "It measures a trace from its first span's start to its last span's end.")


def _too_many_hint(policies: list[dict]) -> str:
    for policy in policies:
        kind, name = policy.get("type"), repr(policy.get("name", ""))
        if kind == "probabilistic":
            share = _number(_setting(policy, "sampling_percentage"))
            if share is not None and share > 100 * TAIL_RATIO:
                return f"your probabilistic policy {name} keeps {share:g}%; make sampling_percentage 10."
        if kind == "latency":
            threshold = _number(_setting(policy, "threshold_ms"))
            if threshold is not None and threshold < THRESHOLD_MS:
                return (f"your latency policy {name} has threshold_ms: {threshold:g}, which ordinary "
                        f"traces (10 ms) can pass; make it {THRESHOLD_MS}.")
        if kind == "status_code":
            codes = {str(code).upper() for code in _setting(policy, "status_codes") or []}
            if codes & {"OK", "UNSET"}:
                return (f"your status_code policy {name} also keeps {sorted(codes - {'ERROR'})}, "
                        "which every ordinary trace has; keep only [ERROR].")
        if kind == "always_sample":
            return f"your policy {name} of type always_sample keeps every trace; remove it."
    return ("a trace is kept when ANY policy keeps it: only the probabilistic policy should keep "
            "ordinary traces, with sampling_percentage: 10.")


def _too_few_hint(policies: list[dict]) -> str:
    for policy in _of_type(policies, "probabilistic"):
        share = _number(_setting(policy, "sampling_percentage"))
        if share is not None and share < 100 * TAIL_RATIO:
            return (f"your probabilistic policy {policy.get('name', '')!r} keeps {share:g}%; "
                    "make sampling_percentage 10.")
    if not _of_type(policies, "probabilistic"):
        return ("add a policy of type probabilistic with sampling_percentage: 10: it keeps a tenth "
                "of all traces, chosen by trace id.")
    return "the probabilistic policy should keep 10% of traces: sampling_percentage: 10."
