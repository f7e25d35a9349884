"""The lab on the real backends: Jaeger alone, and the Collector pipeline in front of it.

Each test starts the real Jaeger binary (and, through it, the Collector configs
from compose/) as `tracequest up --backend ...` would, on free ports.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from conftest import dispatch, trace_id_of
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tracequest.traces.client import QueryClient
from tracequest.lab import Lab, LabSettings
from tracequest.lab.settings import SERVICES
from tracequest.host.ports import Ports
from tracequest.lab.mix import kept_by_kind, send_mix

SEEDED = {"TQ_SEED": "7"}   # same random delays, timeouts and retries in every lab
RAW_EMAIL = "orders@rachels-floral.example"


@pytest.fixture
def start_lab(tmp_path, collector_bin):
    """Start labs on free ports (Jaeger alone, or the Collector before it); each is stopped at the end."""
    started = []

    def start(**options) -> Lab:
        lab = Lab(LabSettings(ports=Ports.free(), **options), home=tmp_path / f"lab{len(started)}")
        started.append(lab)
        lab.up(log=lambda *_: None)
        return lab

    yield start
    for lab in started:
        lab.down(log=lambda *_: None)


def shape(trace) -> Counter:
    """What the tree is made of: (depth, service, span name, kind) with counts."""
    return Counter((depth, s.service, s.name, s.kind) for s, depth in trace.walk())


def first_dispatch(lab):
    response = dispatch(lab, "123")
    assert response.status_code == 200, response.text
    return QueryClient(lab.query_url).wait_for_trace(trace_id_of(response), min_spans=30, settle=1.0)


def test_jaeger_backend_shows_the_same_trace_as_the_embedded_one(start_lab):
    embedded = first_dispatch(start_lab(service_env=SEEDED))
    jaeger = first_dispatch(start_lab(backend="jaeger", service_env=SEEDED))
    assert len(jaeger) == len(embedded) >= 30
    assert shape(jaeger) == shape(embedded)
    assert len(jaeger.roots) == 1 and jaeger.orphans == []
    assert set(jaeger.services) == {"frontend", "customer", "driver", "route"}


def test_collector_backend_delivers_whole_traces_to_jaeger(start_lab):
    lab = start_lab(backend="collector")
    assert set(lab.status()) == {"jaeger", "collector", *SERVICES}
    trace = first_dispatch(lab)
    assert len(trace.roots) == 1 and trace.orphans == []
    assert set(trace.services) == {"frontend", "customer", "driver", "route"}


def test_pii_pipeline_leaves_no_raw_email_in_jaeger(start_lab):
    lab = start_lab(backend="collector", collector_config="pii")
    trace = first_dispatch(lab)
    customer = trace.find(service="customer", kind="SERVER")[0]
    assert customer.attributes.get("user.email") not in (None, RAW_EMAIL)   # hashed, still joinable
    stored = json.dumps(QueryClient(lab.query_url).trace_json(trace.trace_id))
    assert RAW_EMAIL not in stored


def test_pii_pipeline_drops_authorization_headers(start_lab):
    lab = start_lab(backend="collector", collector_config="pii", services=())
    provider = exporting_provider(lab, "pii-check")
    with provider.get_tracer("tests").start_as_current_span("GET /account") as span:
        span.set_attribute("http.request.header.authorization", ["Bearer secret-token"])
        span.set_attribute("user.email", "ada@example.com")
        span.set_attribute("customer.id", "123")
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    client = QueryClient(lab.query_url)
    (stored,) = client.wait_for_trace(trace_id).spans
    assert "http.request.header.authorization" not in stored.attributes
    assert stored.attributes["user.email"] != "ada@example.com"
    assert stored.attributes["customer.id"] == "123"       # what is not PII passes untouched
    assert "secret-token" not in json.dumps(client.trace_json(trace_id))


def exporting_provider(lab, service: str) -> TracerProvider:
    """An SDK tracer provider exporting to the lab's OTLP gRPC port."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{lab.ports.otlp_grpc}", insecure=True)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=4096, max_export_batch_size=256))
    return provider


# --- tail sampling, for real ------------------------------------------------

MIX = {"error": 50, "slow": 50, "normal": 500}
NORMAL_RATE = 0.10


def test_tail_sampling_keeps_errors_slow_and_a_tenth_of_the_rest(start_lab, monkeypatch):
    monkeypatch.setenv("TQ_TAIL_DECISION_WAIT", "1s")
    lab = start_lab(backend="collector", collector_config="tail-sampling", services=())
    send_mix(f"http://127.0.0.1:{lab.ports.otlp_grpc}", MIX)
    kept = kept_by_kind(QueryClient(lab.query_url))
    # Binomial spread of the 10 % sample: four standard deviations either side.
    expected = MIX["normal"] * NORMAL_RATE
    tolerance = 4 * math.sqrt(MIX["normal"] * NORMAL_RATE * (1 - NORMAL_RATE))
    print(f"tail sampling kept: {dict(kept)} (normal expected {expected:.0f} ± {tolerance:.0f})")
    assert kept["error"] == MIX["error"]
    assert kept["slow"] == MIX["slow"]
    assert abs(kept["normal"] - expected) <= tolerance, kept
