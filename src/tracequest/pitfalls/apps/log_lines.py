"""An order worker that logs as it works: its log lines cannot be matched to its trace.

The spans go to the backend and the log lines to stderr, and nothing joins
them: the standard ``logging`` format knows no trace. Fixed, the logging
instrumentation puts the current trace id and span id on every log record
(``otelTraceID``, ``otelSpanID``) and ``set_logging_format=True`` makes the
format print them, so a log line leads to its trace and back.
"""

import logging
import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

FIXED = os.environ.get("PITFALL_FIXED") == "1"

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("orders")

if FIXED:
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    # Adds otelTraceID/otelSpanID to each record, and calls logging.basicConfig with a format
    # that prints them: [trace_id=... span_id=... resource.service.name=... trace_sampled=...]
    LoggingInstrumentor().instrument(set_logging_format=True)
else:
    logging.basicConfig(format="%(asctime)s %(levelname)s [%(name)s] - %(message)s", level=logging.INFO)

log = logging.getLogger("orders")

with tracer.start_as_current_span("process order") as span:
    span.set_attribute("order.id", "A-17")
    log.info("processing order A-17")
    with tracer.start_as_current_span("charge card"):
        log.warning("card declined once, retrying")
    log.info("order A-17 done")
