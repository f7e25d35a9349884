"""Tracing setup for the timetable service: what you built in quest 01, ready-made.

Nothing to change here. The exporter reads its address from the environment
(OTEL_EXPORTER_OTLP_ENDPOINT); the check sets it to your collector's OTLP
port, so every span goes through your collector.yaml, and only from there to
Jaeger, Zipkin and the metrics.
"""

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAME = "timetable"


def setup_tracing(app) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app)
