"""A basket priced in a thread pool: the tasks' spans lose their parent.

A ThreadPoolExecutor runs each task in a worker thread, and a thread starts
with an empty context: the span that was current where ``submit`` was called
is not current inside the task. Fixed, each task runs in a copy of the
caller's context.
"""

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

FIXED = os.environ.get("PITFALL_FIXED") == "1"

provider = TracerProvider()  # service.name from OTEL_SERVICE_NAME
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("basket")


def price(item: str) -> None:
    with tracer.start_as_current_span("price item") as span:
        span.set_attribute("basket.item", item)


with tracer.start_as_current_span("price basket"), ThreadPoolExecutor(max_workers=3) as pool:
    for item in ("tea", "milk", "bread"):
        if FIXED:
            pool.submit(contextvars.copy_context().run, price, item)  # the task runs in our context
        else:
            pool.submit(price, item)  # the task runs in the worker thread's empty context
