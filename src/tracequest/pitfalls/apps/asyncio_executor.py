"""Blocking work handed from asyncio to a thread: run_in_executor drops the context.

asyncio tasks copy the context when they are created, so ``create_task`` and
``gather`` keep the parent span. ``loop.run_in_executor`` does not: the
function runs in a pool thread with an empty context. ``asyncio.to_thread``
copies the context first.
"""

import asyncio
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

FIXED = os.environ.get("PITFALL_FIXED") == "1"

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("report")


def read_file(name: str) -> None:
    with tracer.start_as_current_span("read file") as span:
        span.set_attribute("file.name", name)


async def fetch(name: str) -> None:
    with tracer.start_as_current_span("fetch"):  # a task: keeps the context
        if FIXED:
            await asyncio.to_thread(read_file, name)  # copies the context into the thread
        else:
            await asyncio.get_running_loop().run_in_executor(None, read_file, name)


async def main() -> None:
    with tracer.start_as_current_span("build report"):
        await asyncio.gather(fetch("a.csv"), fetch("b.csv"))


asyncio.run(main())
