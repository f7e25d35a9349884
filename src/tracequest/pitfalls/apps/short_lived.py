"""A job that forks worker processes: the workers' spans never leave them.

A multiprocessing worker ends with ``os._exit``, which skips the atexit hook
that would flush the BatchSpanProcessor, so whatever the worker's batch still
holds is lost. Fixed, the worker flushes before it returns.
"""

import multiprocessing
import os
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

FIXED = os.environ.get("PITFALL_FIXED") == "1"

provider = TracerProvider()
# The default schedule: a batch leaves every 5 s, or when it is full, or on a flush.
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=5000))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("import")


def import_file(name: str) -> None:
    with tracer.start_as_current_span("import file") as span:
        span.set_attribute("file.name", name)
        time.sleep(0.2)  # reading the file: long enough for `doctor --run` to see the process
    if FIXED:
        provider.force_flush()  # send the batch before the worker process ends


if __name__ == "__main__":
    with tracer.start_as_current_span("nightly import"):
        fork = multiprocessing.get_context("fork")  # the child inherits the current span
        workers = [fork.Process(target=import_file, args=(name,)) for name in ("a.csv", "b.csv")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
