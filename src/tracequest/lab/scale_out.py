"""Experiments on the scale-out topology: routing by trace id against round robin, and overload.

The topology itself (the agent, two tail-sampling gateways and Jaeger as real
processes) is :mod:`tracequest.lab.topology`. This module sends it designed
traffic, each trace's spans in separate export requests as separate programs
would send them, and counts in Jaeger what arrived whole.

:func:`compare` runs the same traffic through both routings and counts, in
Jaeger, the traces stored whole and those stored in part. Run it with
``python -m tracequest.lab.scale_out``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.trace import SpanKind, Status, StatusCode, format_trace_id, set_span_in_context

from tracequest.host import procs
from tracequest.host.ports import HOST
from tracequest.lab.mix import MIX_ATTRIBUTE, QUICK_MS, SLOW_MS
from tracequest.lab.sdk import tracer_provider
from tracequest.lab.topology import GATEWAYS, ScaleOut, collector_metric
from tracequest.traces.client import QueryClient
from tracequest.traces.timefmt import parse_go_duration

#: The designed traffic: services that each take part in every trace, in call order.
#: Each has its own SDK (its own export requests), as separate programs would.
TRAFFIC_SERVICES = ("scale-frontend", "scale-api", "scale-db")
#: Traces per kind for the comparison (the tests and the chapter use this).
DEFAULT_COUNTS = {"error": 15, "slow": 15, "normal": 30}

# --- the designed traffic --------------------------------------------------------

def send_split_traces(endpoint: str, counts: Mapping[str, int],
                      services: tuple[str, ...] = TRAFFIC_SERVICES,
                      payload_bytes: int = 0) -> dict[str, list[str]]:
    """Send traces whose spans leave in different export requests; return trace ids by kind.

    Every trace has one span per service (frontend -> api -> db), and every
    service has its own SDK, so the spans of one trace reach the agent in as
    many requests as there are services, as from three programs. Kinds are
    mix.py's: an ``error`` trace's deepest span fails (a ``failing`` trace's
    every span: any part of it is kept, so spans in = spans out); a ``slow`` trace lasts
    SLOW_MS, but only its root span shows that (the calls under it are quick);
    a ``normal`` trace is neither. Every span carries its kind in ``mix.kind``
    so even a part of a trace can be counted. ``payload_bytes`` adds an
    attribute of that size to every span, to fill a gateway's memory.
    """

    lasting = {"error": QUICK_MS, "slow": SLOW_MS, "normal": QUICK_MS, "failing": QUICK_MS}
    unknown = set(counts) - set(lasting)
    if unknown:
        raise ValueError(f"unknown kinds of trace {sorted(unknown)}; use {', '.join(lasting)}")
    total = sum(counts.values())
    providers = [tracer_provider(s, endpoint, schedule_delay_ms=100, max_queue_size=max(total + 64, 2048))
                 for s in services]
    tracers = [p.get_tracer("tracequest.lab.scale_out") for p in providers]
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    random.shuffle(kinds)
    sent: dict[str, list[str]] = {kind: [] for kind in counts}
    extra = {"payload": "x" * payload_bytes} if payload_bytes else {}
    for kind in kinds:
        end = time.time_ns()
        start = end - lasting[kind] * 1_000_000
        quick = QUICK_MS * 1_000_000 // (len(services) + 1)
        parent, spans = None, []
        for depth, tracer in enumerate(tracers):
            begins = start + depth * 1000
            span = tracer.start_span("GET /scale" if depth == 0 else f"call {services[depth]}",
                                     kind=SpanKind.SERVER if depth == 0 else SpanKind.INTERNAL,
                                     context=set_span_in_context(parent) if parent else None,
                                     start_time=begins, attributes={MIX_ATTRIBUTE: kind, **extra})
            spans.append((span, begins))
            parent = span
        failed = [s for s, _ in spans] if kind == "failing" else [spans[-1][0]] if kind == "error" else []
        for span in failed:
            span.set_status(Status(StatusCode.ERROR, "a designed failure"))
        for depth, (span, begins) in reversed(list(enumerate(spans))):
            span.end(end_time=end if depth == 0 else begins + quick)
        sent[kind].append(format_trace_id(spans[0][0].get_span_context().trace_id))
    for provider in providers:
        provider.shutdown()
    return sent


@dataclass
class Outcome:
    """What Jaeger holds of the traffic, per kind: traces sent, stored whole, stored in part."""

    routing: str
    sent: dict[str, int]
    whole: dict[str, int]
    partial: dict[str, int]

    @property
    def partial_total(self) -> int:
        return sum(self.partial.values())

    def row(self) -> str:
        def cell(kind: str) -> str:
            return f"{self.whole.get(kind, 0)}/{self.sent.get(kind, 0)} + {self.partial.get(kind, 0)}"
        kinds = ("error", "slow", "normal")
        return f"| {self.routing} | " + " | ".join(cell(k) for k in kinds) + f" | {self.partial_total} |"


def count_stored(client: QueryClient, sent: Mapping[str, list[str]], routing: str = "",
                 spans_per_trace: int = len(TRAFFIC_SERVICES), services=TRAFFIC_SERVICES,
                 not_before: float = 3.0, timeout: float = 40.0) -> Outcome:
    """Count, in Jaeger, the sent traces stored whole and stored in part, once the count settles.

    A part of a trace may hold only spans of one service, so every service is
    asked and the answers are joined by trace id.
    """
    def read() -> tuple:
        return tuple(sorted(stored_sizes(client, sent, services).items()))

    stored = dict(procs.settled(read, not_before=not_before, settle=2.5, timeout=timeout) or ())
    return outcome_of(stored, sent, routing, spans_per_trace)


def stored_sizes(client: QueryClient, sent: Mapping[str, list[str]],
                 services=TRAFFIC_SERVICES) -> dict[str, int]:
    """Spans Jaeger holds of each sent trace it holds at all, by trace id."""
    wanted = {tid for ids in sent.values() for tid in ids}
    sizes: dict[str, int] = {}
    for service in services:
        for trace in client.find_traces(service, lookback_s=600, limit=100_000):
            if trace.trace_id in wanted:
                sizes[trace.trace_id] = len(trace)
    return sizes


def outcome_of(stored: Mapping[str, int], sent: Mapping[str, list[str]], routing: str = "",
               spans_per_trace: int = len(TRAFFIC_SERVICES)) -> Outcome:
    """Traces sent, stored whole and stored in part, per kind."""
    kind_of = {tid: kind for kind, ids in sent.items() for tid in ids}
    whole = {kind: 0 for kind in sent}
    partial = {kind: 0 for kind in sent}
    for tid, n in stored.items():
        (whole if n >= spans_per_trace else partial)[kind_of[tid]] += 1
    return Outcome(routing, {k: len(v) for k, v in sent.items()}, whole, partial)


def run(routing: str, counts: Mapping[str, int] = DEFAULT_COUNTS, decision_wait: str = "1s",
        timeout: float = 60.0) -> Outcome:
    """Start the topology with one routing, send the traffic, count what Jaeger keeps, stop."""
    with ScaleOut(routing, decision_wait=decision_wait).up(timeout) as topo:
        sent = send_split_traces(topo.endpoint, counts)
        wait = _seconds(decision_wait)
        # agent batch (0.2 s) + decision wait + gateway batch (1 s), and a margin
        return count_stored(topo.client, sent, routing, not_before=wait + 2.5)


def compare(counts: Mapping[str, int] = DEFAULT_COUNTS, decision_wait: str = "1s") -> list[Outcome]:
    return [run(routing, counts, decision_wait) for routing in ("round-robin", "trace-id")]


def table(outcomes: list[Outcome]) -> str:
    lines = ["| routing | errors whole/sent + partial | slow whole/sent + partial "
             "| normal whole/sent + partial | partial traces |",
             "|---|---|---|---|---|"]
    return "\n".join(lines + [o.row() for o in outcomes])


# --- past a gateway's memory limit ---------------------------------------------------

#: Gateways that refuse spans past 15 MiB of heap (limit 20, spike 5) and a
#: burst that needs more: 6000 traces of three 1.5 kB spans, all kept (every
#: span fails), held for the 5 s decision wait.
OVERLOAD_LIMIT_MIB = (20, 5)
OVERLOAD_TRACES = 6000
OVERLOAD_PAYLOAD_BYTES = 1500
#: What the exporter helper logs each time a refused request is queued to be sent again.
RETRY_LOG_LINE = "Will retry the request"


@dataclass
class Overload:
    """What happened to a burst sent past the gateways' memory limit, counted at each hop."""

    limit_mib: tuple[int, int]
    spans_sent: int
    agent_accepted: float
    refused: dict[str, float]       # per gateway: spans turned away by memory_limiter
    accepted: dict[str, float]      # per gateway: spans taken in, first try or retried
    exported: dict[str, float]      # per gateway: spans sent on to Jaeger
    agent_failed: float             # spans the agent gave up on
    agent_retries: int              # the agent's "will retry" log lines (a sampled log: a lower bound)
    outcome: Outcome                # what Jaeger stores
    peak_rss_mib: dict[str, float]
    drain_seconds: float            # from the first span sent to the last one accepted

    @property
    def lost_traces(self) -> int:
        """Traces sent but not stored whole."""
        return sum(self.outcome.sent.values()) - sum(self.outcome.whole.values())

    def report(self) -> str:
        def each(counts: dict[str, float]) -> str:
            return " + ".join(f"{counts[g]:.0f}" for g in GATEWAYS)
        limit, spike = self.limit_mib
        return "\n".join([
            f"gateways' memory_limiter: limit {limit} MiB, spike {spike} MiB "
            f"(refuses past {limit - spike} MiB of heap)",
            f"spans sent: {self.spans_sent}; accepted by the agent: {self.agent_accepted:.0f}",
            f"refused by the gateways: {each(self.refused)}",
            f"accepted by the gateways in the end: {each(self.accepted)}",
            f"retries in the agent's log (\"{RETRY_LOG_LINE}\"): {self.agent_retries} "
            "(the log is sampled, so at least this many)",
            f"sent on to Jaeger: {each(self.exported)}; given up by the agent: {self.agent_failed:.0f}",
            f"traces stored whole: {sum(self.outcome.whole.values())} of "
            f"{sum(self.outcome.sent.values())}; lost: {self.lost_traces}",
            "gateways' peak RSS: " + ", ".join(f"{g} {self.peak_rss_mib[g]:.0f} MiB" for g in GATEWAYS),
            f"all accepted {self.drain_seconds:.1f} s after the burst began"])


def overload(traces: int = OVERLOAD_TRACES, payload_bytes: int = OVERLOAD_PAYLOAD_BYTES,
             limit_mib: tuple[int, int] = OVERLOAD_LIMIT_MIB, decision_wait: str = "5s",
             timeout: float = 120.0) -> Overload:
    """Send a burst past the gateways' memory limit; count spans in, refused, retried and stored.

    A gateway over its limit refuses spans with a retryable error; the
    agent's load-balancing exporter keeps them queued and sends them again,
    so once the tail sampler has passed its held traces on, every span gets
    in. Every trace is a ``failing`` one, so the sampler keeps every span
    and spans in must equal spans stored.
    """
    with ScaleOut("trace-id", decision_wait=decision_wait, memory_limit_mib=limit_mib).up() as topo:
        samplers = {g: procs.MemorySampler(topo.children[g].pid, every=0.2) for g in GATEWAYS}
        for sampler in samplers.values():
            sampler.start()
        began = time.monotonic()
        sent = send_split_traces(topo.endpoint, {"failing": traces}, payload_bytes=payload_bytes)
        spans = traces * len(TRAFFIC_SERVICES)

        def accepted() -> dict[str, float]:
            return {g: collector_metric(topo.metrics_url(g), "otelcol_receiver_accepted_spans")
                    for g in GATEWAYS}

        def exported() -> dict[str, float]:
            return {g: collector_metric(topo.metrics_url(g), "otelcol_exporter_sent_spans",
                                        'exporter="otlp/jaeger"') for g in GATEWAYS}

        procs.until(lambda: sum(accepted().values()) >= spans, timeout, interval=0.5)
        drained = time.monotonic() - began
        rss = {g: max(s.stop(), default=0) / 2**20 for g, s in samplers.items()}
        # Held for the decision wait, then sent on to Jaeger, which writes them to its store.
        jaeger_metrics = f"http://{HOST}:{topo.ports.jaeger_metrics}/metrics"
        procs.until(lambda: collector_metric(jaeger_metrics, "otelcol_exporter_sent_spans",
                                             'exporter="jaeger_storage_exporter"') >= spans,
                    _seconds(decision_wait) + 30, interval=0.5)
        # All written: one read suffices (the burst is large, so reading it again is slow).
        # Every trace has a root span, so asking for the root service finds every trace.
        outcome = outcome_of(stored_sizes(topo.client, sent, TRAFFIC_SERVICES[:1]), sent, "trace-id")
        agent = topo.metrics_url("agent")
        retries = sum(RETRY_LOG_LINE in line
                      for line in topo.children["agent"].log_path.read_text(errors="replace").splitlines())
        return Overload(
            limit_mib, spans, collector_metric(agent, "otelcol_receiver_accepted_spans"),
            {g: collector_metric(topo.metrics_url(g), "otelcol_receiver_refused_spans") for g in GATEWAYS},
            accepted(), exported(),
            collector_metric(agent, "otelcol_exporter_send_failed_spans", 'exporter="loadbalancing"'),
            retries, outcome, rss, drained)


def _seconds(duration: str) -> float:
    return parse_go_duration(duration) / 1e9


def main(argv: list[str] | None = None) -> int:
    """``python -m tracequest.lab.scale_out``: run both routings once and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m tracequest.lab.scale_out",
        description="Start an agent Collector, two tail-sampling gateways and Jaeger on free "
                    "ports; send the same traces split round-robin, then routed by trace id; "
                    "print how many each way stores whole.")
    parser.add_argument("--overload", action="store_true",
                        help="instead, push the gateways past a small memory limit and count "
                             "what is refused, retried and stored")
    if parser.parse_args(argv).overload:
        result = overload()
        print(result.report())
        return 0 if result.lost_traces == 0 else 1
    print(table(compare()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
