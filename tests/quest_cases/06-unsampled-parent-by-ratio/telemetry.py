"""Tracing setup shared by frontend and route, including the sampler you choose.

A sampler decides, when a span starts, whether it is recorded and exported.
The decision made for a trace's first span travels downstream in the
traceparent header (its last two digits: 01 sampled, 00 not), and each
service's sampler may follow it or decide on its own.
"""

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

RATIO = 0.25  # the share of requests to trace


def make_sampler() -> Sampler:
    """The sampler both services use."""
    # The root span decides by trace id; every later span, here or downstream,
    # follows its parent's sampled flag, so traces are kept or dropped whole.
    # Wrong on purpose: a caller that did not sample is overruled by the ratio.
    return ParentBased(root=TraceIdRatioBased(RATIO),
                       remote_parent_not_sampled=TraceIdRatioBased(RATIO))


def setup_tracing(app, service_name: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                              sampler=make_sampler())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app)
    RequestsInstrumentor().instrument()
