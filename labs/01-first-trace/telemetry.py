"""Tracing setup for the ETA service: the SDK side of OpenTelemetry.

app.py makes spans through the API. The SDK decides what becomes of them:
which service they belong to, how they are batched, and where they are sent.
"""

SERVICE_NAME = "eta"


def setup_tracing(app) -> None:
    """Install a tracer provider and instrument the Flask app; called once, at start-up."""
    # TODO 1: Describe this service. Create a Resource whose "service.name" is
    #         SERVICE_NAME (opentelemetry.sdk.resources.Resource.create).
    #
    # TODO 2: Create a TracerProvider with that resource, and add a
    #         BatchSpanProcessor that exports through OTLPSpanExporter()
    #         (opentelemetry.exporter.otlp.proto.grpc.trace_exporter).
    #         Give the exporter no endpoint: it reads OTEL_EXPORTER_OTLP_ENDPOINT.
    #
    # TODO 3: Make it the global provider with trace.set_tracer_provider(...),
    #         so the tracer in app.py starts recording.
    #
    # TODO 4: Instrument the Flask app (opentelemetry.instrumentation.flask),
    #         so every request gets a SERVER span.
