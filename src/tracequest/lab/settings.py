"""What a lab runs, as settings: the backends, configs and services there are, checked once.

:class:`LabSettings` is everything that decides what a lab starts; it is
written to ``lab.json`` and read back whole, and it refuses a bad value (an
unknown backend, a misspelt knob) with a sentence that says what to choose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from services.common.knobs import KnobError, check_env_names
from tracequest.errors import LabError
from tracequest.host.ports import Ports

__all__ = ["LabError", "LabSettings"]

SERVICES = ("customer", "driver", "route", "model", "assistant", "frontend")  # downstream first
# The model server stands for a hosted LLM provider: untraced, as a provider is to its callers.
UNTRACED = ("model",)
BACKENDS = ("embedded", "jaeger", "collector", "fan-out")
# Backends with the lab's Collector in front of Jaeger (it takes the lab's OTLP ports).
COLLECTOR_BACKENDS = ("collector", "fan-out")
# The real programs (tracequest.programs.registry names) each backend runs, in build order.
BACKEND_PROGRAMS = {"embedded": (), "jaeger": ("jaeger",), "collector": ("jaeger", "collector"),
                    "fan-out": ("jaeger", "collector", "zipkin")}
COLLECTOR_CONFIGS = ("collector", "tail-sampling", "pii", "fan-out", "spanmetrics")
# Pipelines that serve metrics from spans: the lab runs Prometheus beside them when it can.
METRICS_CONFIGS = ("fan-out", "spanmetrics")
# Where real Jaeger keeps spans: memory (forgotten on `down`) or Badger files under <home>/badger.
STORAGES = ("memory", "badger")
# How many collectors stand before Jaeger: one, or an agent routing by trace id to
# two tail-sampling gateways (tracequest.lab.scale_out; compose/collector/agent-trace-id.yaml).
TOPOLOGIES = ("single", "scale-out")


@dataclass(frozen=True)
class LabSettings:
    """Everything that decides what a lab runs; written to lab.json and read back whole.

    Change one with ``dataclasses.replace(settings, backend="jaeger")``.
    """

    backend: str = "embedded"
    collector_config: str = "collector"
    ports: Ports = field(default_factory=Ports)
    services: tuple[str, ...] = SERVICES
    # Knob values for the services, by environment twin (TQ_FIX_DB_QUERY_DELAY=5ms).
    service_env: Mapping[str, str] = field(default_factory=dict)
    # Settings for the backend programs, e.g. TQ_TAIL_DECISION_WAIT for a collector.
    backend_env: Mapping[str, str] = field(default_factory=dict)
    # The embedded backend's retention bound; None leaves its own default.
    max_spans: int | None = None
    max_age_s: float | None = None
    # Real Jaeger's storage (STORAGES); the embedded backend has its own SQLite file.
    storage: str = "memory"
    topology: str = "single"
    # Scale-out only: each gateway's ports (OTLP gRPC, OTLP HTTP, metrics, health),
    # chosen free when the lab starts and kept here so `status` and `down` find them.
    gateway_ports: Mapping[str, list[int]] = field(default_factory=dict)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise LabError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.collector_config not in COLLECTOR_CONFIGS and not Path(self.collector_config).is_file():
            raise LabError(f"unknown collector config {self.collector_config!r}; choose one of: "
                           f"{', '.join(COLLECTOR_CONFIGS)}, or give the path of a YAML file")
        if self.storage not in STORAGES:
            raise LabError(f"unknown storage {self.storage!r}; choose one of: {', '.join(STORAGES)}")
        if self.storage != "memory" and self.backend == "embedded":
            raise LabError(f"storage {self.storage!r} is for real Jaeger; the embedded backend always "
                           "keeps its spans in .tracequest/spans.db. Add --backend jaeger (or collector, fan-out).")
        if self.topology not in TOPOLOGIES:
            raise LabError(f"unknown topology {self.topology!r}; choose one of: {', '.join(TOPOLOGIES)}")
        if self.topology == "scale-out" and (self.backend != "collector"
                                             or self.collector_config != "collector"):
            raise LabError("the scale-out topology puts an agent and two gateway collectors in front "
                           "of real Jaeger, with their own configs: use it with --backend collector "
                           "and no --collector-config")
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise LabError(f"unknown service(s) {sorted(unknown)}; the demo has {', '.join(SERVICES)}")
        _check_knob_names(self.service_env)
        # Keep the start order (downstream first) whatever order was given.
        object.__setattr__(self, "services", tuple(s for s in SERVICES if s in self.services))
        object.__setattr__(self, "collector_config", str(self.collector_config))
        object.__setattr__(self, "service_env", dict(self.service_env))
        object.__setattr__(self, "backend_env", dict(self.backend_env))
        object.__setattr__(self, "gateway_ports", {k: list(v) for k, v in self.gateway_ports.items()})

    def as_state(self) -> dict:
        state = asdict(self)
        state["services"] = list(self.services)
        return state

    @classmethod
    def from_state(cls, state: Mapping) -> LabSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in state.items() if k in known}
        port_names = {f.name for f in fields(Ports)}
        values["ports"] = Ports(**{k: v for k, v in (state.get("ports") or {}).items() if k in port_names})
        values["services"] = tuple(values.get("services", SERVICES))
        return cls(**values)


def _check_knob_names(env: Mapping[str, str]) -> None:
    """A misspelt TQ_* name would be ignored by the services: refuse it here, naming the nearest."""
    try:
        check_env_names(env)
    except KnobError as exc:
        raise LabError(str(exc)) from None


