"""Metrics from spans, for real: SDK -> Collector (spanmetrics) -> Prometheus -> Jaeger's Monitor.

One module, one start of each program, on free ports: real Jaeger with
compose/jaeger/config.yaml (its Monitor reading our Prometheus), the lab's
Collector running compose/collector/spanmetrics.yaml, and the installed
Prometheus scraping the Collector. The traffic is designed so every number is
known in advance: span durations are set through the SDK's start and end
times, so nothing sleeps to make a span slow.

Traffic, one service, one operation, all SERVER spans:
  phase 1: 12 calls of 3 ms (status unset) and 5 calls of 30 ms that fail
  phase 2, once phase 1 has been counted: 3 calls of 1500 ms (status unset)
The connector keeps the first five spans of each series per flush as exemplars,
so sending the slow calls on their own makes them the exemplars of the slow
bucket: the way from a bad bucket to its trace.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracequest.host import procs
from tracequest.programs import prometheus as prometheus_module
from tracequest.programs.collector import collector_env
from tracequest.programs.jaeger import jaeger_env
from tracequest.traces.client import QueryClient
from tracequest.host.ports import Ports, free_port
from tracequest.programs.prometheus import (
    PrometheusError,
    PrometheusUnavailable,
    Sample,
    exemplars,
    find_prometheus,
    prometheus_missing_reason,
    prometheus_process,
    query,
    query_range,
)

ROOT = Path(__file__).resolve().parents[1]
SERVICE, OPERATION = "quotes", "GET /quote"
FAST, FAILED, SLOW = (12, 3), (5, 30), (3, 1500)   # (calls, milliseconds)
CALLS = FAST[0] + FAILED[0] + SLOW[0]

# What spanmetrics (collector 0.161.0) and its Prometheus exporter call things.
CALLS_METRIC = "traces_span_metrics_calls_total"
BUCKET_METRIC = "traces_span_metrics_duration_milliseconds_bucket"
SELECT = f'service_name="{SERVICE}",span_name="{OPERATION}"'


def _start(name: str, argv: list[str], env: dict, home: Path, ready_url: str,
           any_status: bool = False) -> procs.Child:
    child = procs.start(name, argv, home / f"{name}.log", procs.environment(env, scrub=True), cwd=ROOT)
    try:
        ok = child.wait_ready(lambda: procs.answers_http(ready_url, any_status=any_status), 60)
    except procs.ProcessExited:
        ok = False
    if not ok:
        tail = "\n".join(child.tail(30))
        child.stop()
        pytest.fail(f"{name} did not become ready at {ready_url}:\n{tail}")
    return child


@pytest.fixture(scope="module")
def stack(jaeger_bin, collector_bin, prometheus_bin, tmp_path_factory):
    """Jaeger, Prometheus and the spanmetrics Collector, each started once for this module."""
    ports, home = Ports.free(), tmp_path_factory.mktemp("spanmetrics")
    started = []
    try:
        started.append(_start(
            "jaeger", [str(jaeger_bin), "--config", str(ROOT / "compose/jaeger/config.yaml")],
            jaeger_env(ports), home, f"http://127.0.0.1:{ports.query}/api/v3/services"))
        argv, env, ready = prometheus_process(ports, home, binary=prometheus_bin)
        started.append(_start("prometheus", argv, env, home, ready))
        started.append(_start(
            "collector", [str(collector_bin), "--config", str(ROOT / "compose/collector/spanmetrics.yaml")],
            collector_env(ports), home, f"http://127.0.0.1:{ports.collector_health}/"))
        yield SimpleNamespace(
            ports=ports,
            prometheus=f"http://127.0.0.1:{ports.prometheus}",
            query=f"http://127.0.0.1:{ports.query}",
            otlp=f"http://127.0.0.1:{ports.otlp_grpc}",
            spanmetrics=f"http://127.0.0.1:{ports.spanmetrics}/metrics",
        )
    finally:
        for child in reversed(started):
            child.stop()


def _send(provider: TracerProvider, calls: int, millis: int, failed: bool = False) -> list[str]:
    """``calls`` SERVER spans of exactly ``millis`` ms, ending now; their trace ids."""
    tracer = provider.get_tracer("tests.spanmetrics")
    ids = []
    for _ in range(calls):
        end = time.time_ns()
        span = tracer.start_span(OPERATION, kind=SpanKind.SERVER, start_time=end - millis * 1_000_000)
        if failed:
            span.set_status(Status(StatusCode.ERROR, "quote service unavailable"))
        span.end(end_time=end)
        ids.append(format(span.get_span_context().trace_id, "032x"))
    assert provider.force_flush(10_000)
    return ids


def _total(url: str, promql: str) -> float:
    try:
        return sum(sample.value for sample in query(url, promql))
    except PrometheusError:
        return 0.0


def _wait_for_calls(url: str, expected: int) -> float:
    """Wait until Prometheus has scraped ``expected`` calls; return the count it shows.

    The connector flushes every 5s, and a new series shows 0 at its first flush
    (so that rate() counts its first calls): a new series needs two flushes.
    """
    def total() -> float:
        return _total(url, f"sum({CALLS_METRIC}{{{SELECT}}})")

    procs.until(lambda: total() >= expected, 40, interval=0.5)
    return total()


@pytest.fixture(scope="module")
def traffic(stack):
    """Send the designed traffic once; what was sent, by kind, with the slow calls' trace ids."""
    started = time.time()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=stack.otlp, insecure=True)))
    try:
        _send(provider, *FAST)
        _send(provider, *FAILED, failed=True)
        # Phase 2 only once phase 1 is counted: then the slow calls are their series' first spans
        # in a flush, so the connector keeps them as exemplars.
        assert _wait_for_calls(stack.prometheus, FAST[0] + FAILED[0]) == FAST[0] + FAILED[0]
        slow_ids = _send(provider, *SLOW)
    finally:
        provider.shutdown()
    return SimpleNamespace(started=started, slow_ids=slow_ids)


def test_calls_are_counted_exactly_per_service_and_operation(stack, traffic):
    assert _wait_for_calls(stack.prometheus, CALLS) == CALLS
    by_status = {s.labels["status_code"]: s.value for s in
                 query(stack.prometheus, f"sum by (status_code) ({CALLS_METRIC}{{{SELECT}}})")}
    assert by_status == {"STATUS_CODE_UNSET": FAST[0] + SLOW[0], "STATUS_CODE_ERROR": FAILED[0]}


def test_series_carry_the_labels_the_lessons_name(stack, traffic):
    _wait_for_calls(stack.prometheus, CALLS)
    (series, *_) = query(stack.prometheus, f'{CALLS_METRIC}{{{SELECT},status_code="STATUS_CODE_ERROR"}}')
    labels = series.labels
    assert labels["span_kind"] == "SPAN_KIND_SERVER"
    assert {"service_name", "span_name", "span_kind", "status_code", "collector_instance_id"} <= set(labels)


def test_duration_histogram_puts_each_call_in_its_bucket(stack, traffic):
    _wait_for_calls(stack.prometheus, CALLS)
    # The histogram is scraped with the counter; wait for its last bucket to be complete too.
    procs.until(lambda: _total(stack.prometheus, f'sum({BUCKET_METRIC}{{{SELECT},le="+Inf"}})') >= CALLS, 20)
    # Bucket bounds ("le") are written as OpenMetrics writes them: "2.0", "1400.0", "+Inf".
    cumulative = {float(s.labels["le"]): s.value for s in
                  query(stack.prometheus, f"sum by (le) ({BUCKET_METRIC}{{{SELECT}}})")}
    fast, failed, slow = FAST[0], FAILED[0], SLOW[0]
    assert cumulative[2] == 0
    assert cumulative[4] == fast                       # 3 ms
    assert cumulative[10] == fast                      # nothing between 4 and 10 ms
    assert cumulative[50] == fast + failed             # 30 ms
    assert cumulative[1400] == fast + failed           # nothing between 50 ms and 1.4 s
    assert cumulative[2000] == fast + failed + slow    # 1500 ms: the slow bucket
    assert cumulative[float("inf")] == CALLS


def test_an_exemplar_of_the_slow_bucket_leads_to_its_trace(stack, traffic):
    _wait_for_calls(stack.prometheus, CALLS)
    selector = f'{BUCKET_METRIC}{{{SELECT},le="2000.0"}}'

    def slow_exemplars():
        try:
            return exemplars(stack.prometheus, selector, traffic.started - 60, time.time() + 60)
        except PrometheusError:
            return []

    found = procs.until(slow_exemplars, 20, interval=0.5)
    assert found, f"no exemplar on {selector}"
    ex = max(found, key=lambda e: e.value)
    assert ex.value == pytest.approx(SLOW[1], abs=1)       # milliseconds, as observed
    assert ex.trace_id in traffic.slow_ids
    trace = QueryClient(stack.query).wait_for_trace(ex.trace_id)
    (span,) = trace.spans
    assert (span.service, span.name) == (SERVICE, OPERATION)
    assert span.duration_ns == SLOW[1] * 1_000_000


def test_range_query_shows_the_count_rising(stack, traffic):
    _wait_for_calls(stack.prometheus, CALLS)
    # The last step falls at most one step before `end`: ending a second from now puts it after
    # the moment the count was seen complete (CI once read 17 at a step just before that).
    series = query_range(stack.prometheus, f"sum({CALLS_METRIC}{{{SELECT}}})",
                         traffic.started - 10, time.time() + 1, step=1)
    (only,) = series
    values = [v for _, v in only.points]
    assert values == sorted(values)                     # a counter never falls
    assert values[-1] == CALLS and FAST[0] + FAILED[0] in values


def test_jaeger_monitor_reads_call_rates_from_prometheus(stack, traffic):
    """Jaeger's SPM API (/api/metrics/calls) answers from our Prometheus, with real rates."""
    _wait_for_calls(stack.prometheus, CALLS)

    def rates():
        response = requests.get(f"{stack.query}/api/metrics/calls", timeout=10, params={
            "service": SERVICE, "spanKind": "server", "groupByOperation": "true",
            "endTs": int(time.time() * 1000), "lookback": 120_000, "step": 2_000, "ratePer": 60_000})
        assert response.status_code == 200, response.text
        family = response.json()
        points = [p["gaugeValue"]["doubleValue"] for m in family["metrics"]
                  for p in m["metricPoints"] if "doubleValue" in p.get("gaugeValue", {})]
        return family if any(v > 0 for v in points) else None

    family = procs.until(rates, 30, interval=1)
    assert family, "Jaeger's /api/metrics/calls never showed a non-zero call rate"
    assert family["name"] == "service_operation_call_rate"
    (metric,) = family["metrics"]
    labels = {label["name"]: label["value"] for label in metric["labels"]}
    assert labels == {"service_name": SERVICE, "operation": OPERATION}


def test_reader_passes_on_prometheus_own_words(stack):
    assert query(stack.prometheus, "1 + 1") == [Sample({}, 2.0, pytest.approx(time.time(), abs=60))]
    with pytest.raises(PrometheusError, match="parse error"):
        query(stack.prometheus, "sum(")
    with pytest.raises(PrometheusUnavailable, match="no Prometheus answers"):
        query(f"http://127.0.0.1:{free_port()}", "up")


def test_a_missing_prometheus_is_explained_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_BIN", str(tmp_path / "prometheus"))
    assert find_prometheus() is None
    assert "PROMETHEUS_BIN" in prometheus_missing_reason()
    monkeypatch.delenv("PROMETHEUS_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(prometheus_module, "_FALLBACKS", ())
    assert find_prometheus() is None
    assert "`sudo apt-get install prometheus`" in prometheus_missing_reason()
