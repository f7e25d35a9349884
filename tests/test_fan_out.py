"""The fan-out backend: one Collector sends every trace to Jaeger and to Zipkin at once.

The real programs run: Jaeger, the Zipkin server jar, the lab's Collector
(compose/collector/fan-out.yaml) and, when installed, Prometheus; the demo
services send OTLP to the Collector only.
"""

from __future__ import annotations

import pytest
import requests

from tracequest.host import procs
from tracequest.traces.client import QueryClient
from tracequest.lab import Lab
from tracequest.programs.zipkin import trace_summary, zipkin_trace

from conftest import dispatch, trace_id_of


@pytest.fixture
def fan_out(fan_out_lab):
    return fan_out_lab


def jaeger_and_zipkin(lab: Lab, trace_id: str):
    """The trace as Jaeger holds it, and Zipkin's spans once it holds as many."""
    in_jaeger = QueryClient(lab.query_url).wait_for_trace(trace_id, min_spans=2, settle=1.0)
    zipkin = lab.url("zipkin")
    in_zipkin = procs.until(lambda: (spans := zipkin_trace(zipkin, trace_id))
                            and len(spans) >= len(in_jaeger) and spans, timeout=20)
    return in_jaeger, in_zipkin or zipkin_trace(zipkin, trace_id)


def test_one_dispatch_lands_in_jaeger_and_in_zipkin_alike(fan_out):
    response = dispatch(fan_out)
    assert response.status_code == 200, response.text
    trace_id = trace_id_of(response)
    in_jaeger, in_zipkin = jaeger_and_zipkin(fan_out, trace_id)
    summary = trace_summary(in_zipkin)
    assert summary["spans"] == len(in_jaeger) > 20
    assert summary["services"] == sorted(in_jaeger.services)
    # Same span ids on both sides: one trace, translated, not two recordings.
    assert {s["id"] for s in in_zipkin} == {s.span_id for s in in_jaeger}
    # Zipkin keeps the parent links the Collector translated from OTLP.
    parents = {s["id"]: s.get("parentId") for s in in_zipkin}
    assert parents == {s.span_id: s.parent_id for s in in_jaeger}


def test_the_collector_also_serves_metrics_from_those_spans(fan_out):
    response = dispatch(fan_out, customer="392")
    trace_id_of(response)

    def frontend_calls() -> bool:
        text = requests.get(f"{fan_out.url('spanmetrics')}/metrics", timeout=5).text
        return any(line.startswith("traces_span_metrics_calls_total")
                   and 'service_name="frontend"' in line for line in text.splitlines())

    assert procs.until(frontend_calls, timeout=20), "no frontend call counts on the span metrics port"


def test_status_lists_every_program_and_zipkin_ui(fan_out):
    status = fan_out.status()
    assert {"jaeger", "zipkin", "collector"} <= set(status)
    assert all(info["healthy"] for info in status.values()), status
    assert status["zipkin"]["url"] == f"{fan_out.url('zipkin')}/zipkin/"
    page = requests.get(status["zipkin"]["url"], timeout=5)
    assert page.status_code == 200 and "zipkin" in page.text.lower()
