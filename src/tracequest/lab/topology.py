"""The scale-out topology as programs: one agent collector, two gateways, Jaeger.

    traffic -> agent -> gateway-1 -> Jaeger
                     -> gateway-2 ->

Every box is a real process: Jaeger and the lab's own Collector build, each
on its own ports, each loading the very files in ``compose/collector/``
(``agent-trace-id.yaml`` or ``agent-round-robin.yaml``, and ``gateway.yaml``
twice). The gateways sample by tail: keep errors, keep traces over 500 ms,
keep 10 % of the rest. That is only right when a gateway sees every span of a
trace, which is what the agent's routing decides.

:func:`collector_programs` is the one recipe for the gateways and the agent:
:class:`ScaleOut` runs it on free ports for the experiments in
:mod:`tracequest.lab.scale_out`, and ``tracequest up --topology scale-out``
runs it on the lab's own ports.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from tracequest.errors import LabError
from tracequest.host import procs
from tracequest.host.paths import compose_file
from tracequest.host.ports import HOST, Ports, free_port
from tracequest.host.procs import Process, wait_until_healthy
from tracequest.programs.cache import BUILD_COMMAND
from tracequest.programs.collector import find_collector
from tracequest.programs.jaeger import find_jaeger, jaeger_process
from tracequest.traces.client import QueryClient

#: The agent's config for each way of spreading spans over the gateways.
ROUTINGS = {"trace-id": "agent-trace-id.yaml", "round-robin": "agent-round-robin.yaml"}
GATEWAY_CONFIG = "gateway.yaml"
GATEWAYS = ("gateway-1", "gateway-2")
#: What the agent configs read besides the collector's own TQ_COLLECTOR_* ports.
GATEWAY_ENDPOINT_VARS = ("TQ_GATEWAY_1_ENDPOINT", "TQ_GATEWAY_2_ENDPOINT")

class TopologyError(LabError):
    """The topology cannot start: a real program it runs is not built yet."""


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
        jaeger, collector = find_jaeger(), find_collector()
        if jaeger is None or collector is None:
            raise TopologyError(f"the scale-out topology runs real Jaeger and the lab's Collector; "
                                f"build them first: {BUILD_COMMAND}")
        jaeger_otlp = f"{HOST}:{self.ports.jaeger_otlp_grpc}"
        return [jaeger_process(jaeger, self.ports, behind_collector=True), *collector_programs(
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
    total = 0.0
    for line in requests.get(url, timeout=5).text.splitlines():
        metric, _, rest = line.partition("{") if "{" in line.split(" ", 1)[0] else line.partition(" ")
        if metric in (name, f"{name}_total") and label in rest:
            total += float(line.rsplit(" ", 1)[1])
    return total


