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
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler

RATIO = 0.25  # the share of requests to trace


def make_sampler() -> Sampler:
    """The sampler both services use."""
    # TODO: Keep RATIO of all traces, and make sure every service keeps or
    #       drops a trace together with its root span: a kept trace must be
    #       whole, and a dropped one must leave nothing behind.
    #       opentelemetry.sdk.trace.sampling has the samplers you need; the
    #       parent-based family follows the caller's decision.
    return ALWAYS_ON


def setup_tracing(app, service_name: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                              sampler=make_sampler())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app)
    RequestsInstrumentor().instrument()
