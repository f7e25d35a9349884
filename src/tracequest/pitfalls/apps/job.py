"""A job with one span and a child, set up only by the environment.

Run it under ``opentelemetry-instrument``: the exporter, its protocol, its
endpoint and the service name all come from OTEL_* variables, so each
environment mistake shows here exactly as it would in any program.
"""

from opentelemetry import trace

tracer = trace.get_tracer("job")

with tracer.start_as_current_span("nightly job"):
    with tracer.start_as_current_span("load rows"):
        pass
