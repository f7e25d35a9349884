"""The scale-out topology, natively: one agent collector, two gateways, Jaeger.

    designed traffic -> agent -> gateway-1 -> Jaeger
                              -> gateway-2 ->

Every box is a real process: Jaeger and the lab's own Collector build, each
on its own free ports, each loading the very files in ``compose/collector/``
(``agent-trace-id.yaml`` or ``agent-round-robin.yaml``, and ``gateway.yaml``
twice). The gateways sample by tail: keep errors, keep traces over 500 ms,
keep 10 % of the rest. That is only right when a gateway sees every span of a
trace, which is what the agent's routing decides.

:func:`compare` runs the same traffic through both routings and counts, in
Jaeger, the traces stored whole and those stored in part. Run it with
``python -m tracequest.scale_out``.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .client import QueryClient
from .lab import LabError, Process, wait_until_healthy
from .paths import compose_file
from .ports import HOST, Ports, free_port

#: The agent's config for each way of spreading spans over the gateways.
ROUTINGS = {"trace-id": "agent-trace-id.yaml", "round-robin": "agent-round-robin.yaml"}
GATEWAY_CONFIG = "gateway.yaml"
GATEWAYS = ("gateway-1", "gateway-2")
#: What the agent configs read besides the collector's own TQ_COLLECTOR_* ports.
GATEWAY_ENDPOINT_VARS = ("TQ_GATEWAY_1_ENDPOINT", "TQ_GATEWAY_2_ENDPOINT")

#: The designed traffic: services that each take part in every trace, in call order.
#: Each has its own SDK (its own export requests), as separate programs would.
TRAFFIC_SERVICES = ("scale-frontend", "scale-api", "scale-db")
#: Traces per kind for the comparison (the tests and the chapter use this).
DEFAULT_COUNTS = {"error": 15, "slow": 15, "normal": 30}


class TopologyError(RuntimeError):
    """A program of the topology did not start; the message carries its log's tail."""


@dataclass
class CollectorPorts:
    """What one collector of the topology listens on."""

    otlp_grpc: int
    otlp_http: int
    metrics: int
    health: int

    @classmethod
    def free(cls, avoid: set[int]) -> CollectorPorts:
        chosen = []
        for _ in range(4):
            chosen.append(free_port(avoid=avoid | set(chosen)))
        avoid.update(chosen)
        return cls(*chosen)

    @classmethod
    def of_lab(cls, ports: Ports) -> CollectorPorts:
        """The lab's own collector ports: where the agent listens, so services need no change."""
        return cls(ports.otlp_grpc, ports.otlp_http, ports.collector_metrics, ports.collector_health)

    def env(self, jaeger_otlp: str) -> dict[str, str]:
        """The TQ_COLLECTOR_* variables every compose/collector/ file reads."""
        return {"TQ_COLLECTOR_HOST": HOST,
                "TQ_COLLECTOR_OTLP_GRPC_PORT": str(self.otlp_grpc),
                "TQ_COLLECTOR_OTLP_HTTP_PORT": str(self.otlp_http),
                "TQ_COLLECTOR_METRICS_PORT": str(self.metrics),
                "TQ_COLLECTOR_HEALTH_PORT": str(self.health),
                "TQ_JAEGER_OTLP_ENDPOINT": jaeger_otlp}


def collector_programs(collector: Path, routing: str, agent_ports: CollectorPorts,
                       gateway_ports: Mapping[str, CollectorPorts], jaeger_otlp: str,
                       gateway_env: Mapping[str, str] | None = None,
                       memory_limit_mib: tuple[int, int] | None = None) -> list[Process]:
    """The gateways, then the agent that feeds them, as ScaleOut and ``tracequest up --topology scale-out`` run them."""
    programs = []
    for name, ports in gateway_ports.items():
        env = {**ports.env(jaeger_otlp), **(gateway_env or {})}
        if memory_limit_mib:
            env["TQ_GATEWAY_MEMORY_LIMIT_MIB"], env["TQ_GATEWAY_MEMORY_SPIKE_MIB"] = map(str, memory_limit_mib)
        config = compose_file("collector", GATEWAY_CONFIG)
        programs.append(Process(name, [str(collector), "--config", str(config)],
                                f"http://{HOST}:{ports.health}/", env))
    agent_env = agent_ports.env(jaeger_otlp)
    for var, name in zip(GATEWAY_ENDPOINT_VARS, gateway_ports):
        agent_env[var] = f"{HOST}:{gateway_ports[name].otlp_grpc}"
    agent_config = compose_file("collector", ROUTINGS[routing])
    programs.append(Process("agent", [str(collector), "--config", str(agent_config)],
                            f"http://{HOST}:{agent_ports.health}/", agent_env))
    return programs


class ScaleOut:
    """Jaeger, two gateways and one agent, started together and stopped together.

    Use it as a context manager. ``decision_wait`` is the gateways'
    tail-sampling wait; ``memory_limit_mib`` (limit, spike) replaces
    gateway.yaml's memory_limiter figures, to push a gateway past them.
    """

    def __init__(self, routing: str = "trace-id", home: Path | str | None = None,
                 decision_wait: str = "5s", memory_limit_mib: tuple[int, int] | None = None,
                 ports: Ports | None = None):
        if routing not in ROUTINGS:
            raise ValueError(f"unknown routing {routing!r}; choose one of: {', '.join(ROUTINGS)}")
        self.routing = routing
        self.decision_wait = decision_wait
        self._own_home = home is None
        self.home = Path(home) if home else Path(tempfile.mkdtemp(prefix="tq-scale-out-"))
        self.ports = ports or Ports.free()
        taken = set(self.ports.as_dict().values())
        self.gateway_ports = {name: CollectorPorts.free(taken) for name in GATEWAYS}
        self.agent_ports = CollectorPorts.of_lab(self.ports)
        self.memory_limit_mib = memory_limit_mib
        self.children: dict[str, procs.Child] = {}

    # --- where things are -----------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The agent's OTLP/gRPC address: where traffic goes in."""
        return f"http://{HOST}:{self.agent_ports.otlp_grpc}"

    @property
    def query_url(self) -> str:
        return f"http://{HOST}:{self.ports.query}"

    @property
    def client(self) -> QueryClient:
        return QueryClient(self.query_url)

    def metrics_url(self, name: str) -> str:
        """A collector's own metrics (Prometheus text): refusals, retries, queue size."""
        ports = self.agent_ports if name == "agent" else self.gateway_ports[name]
        return f"http://{HOST}:{ports.metrics}/metrics"

    # --- the programs ---------------------------------------------------------

    def programs(self) -> list[Process]:
        """Jaeger first, then the gateways, then the agent that feeds them."""
        from .binaries import find_collector, find_jaeger, jaeger_env

        jaeger, collector = find_jaeger(), find_collector()
        if jaeger is None or collector is None:
            from .binaries import BUILD_COMMAND
            raise TopologyError(f"the scale-out topology runs real Jaeger and the lab's Collector; "
                                f"build them first: {BUILD_COMMAND}")
        jaeger_otlp = f"{HOST}:{self.ports.jaeger_otlp_grpc}"
        jaeger_process = Process("jaeger", [str(jaeger), "--config", str(compose_file("jaeger", "config.yaml"))],
                                 f"{self.query_url}/api/v3/services",
                                 jaeger_env(self.ports, behind_collector=True))
        return [jaeger_process, *collector_programs(
            collector, self.routing, self.agent_ports, self.gateway_ports, jaeger_otlp,
            {"TQ_TAIL_DECISION_WAIT": self.decision_wait}, self.memory_limit_mib)]

    def up(self, timeout: float = 60.0) -> ScaleOut:
        """Start every program, then wait until each answers its health check."""
        programs = self.programs()
        # Jaeger and the gateways together, then the agent, so it never dials a closed port.
        groups = (programs[:-1], programs[-1:])
        try:
            for group in groups:
                for program in group:
                    self.children[program.name] = procs.start(
                        program.name, program.argv, self.home / "logs" / f"{program.name}.log",
                        env=procs.environment(program.env, scrub=True))
                wait_until_healthy(group, self.children, timeout)
        except LabError as exc:
            self.down()
            raise TopologyError(str(exc)) from None
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Stop the agent first (it flushes), then the gateways, then Jaeger."""
        for name in ("agent", *GATEWAYS, "jaeger"):
            child = self.children.pop(name, None)
            if child is not None:
                child.stop(grace=10)
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> ScaleOut:
        return self if self.children else self.up()

    def __exit__(self, *exc) -> None:
        self.down()


def collector_metric(url: str, name: str, label: str = "") -> float:
    """The sum of the samples of one of a collector's own metrics (0 when it has none yet).

    E.g. ``otelcol_receiver_refused_spans``: spans the OTLP receiver turned
    away, which is what a memory_limiter over its limit makes it do. A name
    matches with or without the ``_total`` some exporters add; ``label``
    (e.g. ``exporter="otlp/jaeger"``) keeps only the samples carrying it.
    """
    import requests

    total = 0.0
    for line in requests.get(url, timeout=5).text.splitlines():
        metric, _, rest = line.partition("{") if "{" in line.split(" ", 1)[0] else line.partition(" ")
        if metric in (name, f"{name}_total") and label in rest:
            total += float(line.rsplit(" ", 1)[1])
    return total


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
    from opentelemetry.trace import SpanKind, Status, StatusCode, format_trace_id, set_span_in_context

    from .quests.mix import MIX_ATTRIBUTE, QUICK_MS, SLOW_MS
    from .sdk import tracer_provider

    lasting = {"error": QUICK_MS, "slow": SLOW_MS, "normal": QUICK_MS, "failing": QUICK_MS}
    unknown = set(counts) - set(lasting)
    if unknown:
        raise ValueError(f"unknown kinds of trace {sorted(unknown)}; use {', '.join(lasting)}")
    total = sum(counts.values())
    providers = [tracer_provider(s, endpoint, schedule_delay_ms=100, max_queue_size=max(total + 64, 2048))
                 for s in services]
    tracers = [p.get_tracer("tracequest.scale_out") for p in providers]
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
    from .timefmt import parse_go_duration

    return parse_go_duration(duration) / 1e9


def main(argv: list[str] | None = None) -> int:
    """``python -m tracequest.scale_out``: run both routings once and print the table."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tracequest.scale_out",
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
