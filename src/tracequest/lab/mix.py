"""The tail-sampling mix: designed traffic whose survivors can be counted by kind.

The tail-sampling check and the project's own tests send the same mix and
count what was kept the same way, so they measure the same thing.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping

from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from tracequest.host.procs import settled
from tracequest.lab.sdk import tracer_provider
from tracequest.traces.client import QueryClient
from tracequest.traces.model import Trace

MIX_SERVICE = "sampling-mix"
MIX_ATTRIBUTE = "mix.kind"
SLOW_MS = 800     # how long a slow trace lasts
QUICK_MS = 10     # how long every other trace lasts


def send_mix(endpoint: str, counts: Mapping[str, int], service: str = MIX_SERVICE,
             lasting_ms: Mapping[str, int] | None = None) -> None:
    """Send a designed mix of two-span traces to an OTLP/gRPC endpoint, and flush.

    ``counts`` says how many traces of each kind: ``error`` (the child span ends
    with status ERROR), ``slow`` (the trace lasts SLOW_MS), ``normal`` (neither),
    and any kind named in ``lasting_ms`` (a trace of that many ms, e.g. just
    either side of a sampling threshold). Every other trace is QUICK_MS long.
    The root span carries its kind in ``mix.kind``, so what survives can be
    counted per kind. The kinds are shuffled, as real traffic would be.
    """
    lasting = {"error": QUICK_MS, "slow": SLOW_MS, "normal": QUICK_MS, **(lasting_ms or {})}
    unknown = set(counts) - set(lasting)
    if unknown:
        raise ValueError(f"unknown kinds of trace {sorted(unknown)}; use {', '.join(lasting)}")
    total = sum(counts.values())
    provider = tracer_provider(service, endpoint, schedule_delay_ms=100, max_queue_size=2 * total + 64)
    tracer = provider.get_tracer("tracequest.mix")
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    random.shuffle(kinds)
    for kind in kinds:
        start = time.time_ns() - lasting[kind] * 1_000_000
        root = tracer.start_span("GET /mix", kind=SpanKind.SERVER, start_time=start,
                                 attributes={MIX_ATTRIBUTE: kind})
        child = tracer.start_span("work", context=set_span_in_context(root), start_time=start + 1000)
        if kind == "error":
            child.set_status(Status(StatusCode.ERROR, "a designed failure"))
        child.end()
        root.end()
    provider.shutdown()


def kept_by_kind(client: QueryClient, service: str = MIX_SERVICE, not_before: float = 3.0,
                 settle: float = 2.0, timeout: float = 30.0) -> Counter:
    """How many traces of each kind Jaeger holds, once that count has stopped changing.

    A tail sampler exports a trace only after its decision wait, and a batch
    processor holds it a little longer, so an empty Jaeger means nothing until
    ``not_before`` seconds have passed (the caller knows the config's delays).
    """
    def read() -> Counter:
        traces = client.find_traces(service, lookback_s=600, limit=100_000)
        return Counter(_kind_of(trace) for trace in traces)

    return settled(read, not_before=not_before, settle=settle, timeout=timeout)


def _kind_of(trace: Trace) -> str:
    for span in trace:
        if MIX_ATTRIBUTE in span.attributes:
            return str(span.attributes[MIX_ATTRIBUTE])
    return "unknown"


