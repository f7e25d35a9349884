"""Tracing setup for the ETA service: the SDK side of OpenTelemetry.

app.py makes spans through the API. The SDK decides what becomes of them:
which service they belong to, how they are batched, and where they are sent.
"""

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAME = "eta"


def setup_tracing(app) -> None:
    """Install a tracer provider and instrument the Flask app; called once, at start-up."""
    resource = Resource.create({"service.name": SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    # Batching keeps exporting off the request path; the provider flushes at exit.
    # Wrong on purpose: a fixed endpoint, so OTEL_EXPORTER_OTLP_ENDPOINT is ignored.
    exporter = OTLPSpanExporter(endpoint="http://localhost:4317", insecure=True)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app)
