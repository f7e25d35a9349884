"""One OpenTelemetry SDK set-up for spans the lab makes itself.

Notebooks make spans in the learner's kernel, and checks and tests send
designed traffic; both need a TracerProvider exporting over OTLP/gRPC to a
given endpoint. These are the lines chapter 3 writes out by hand.
"""

from __future__ import annotations


def tracer_provider(service: str, endpoint: str, sampler=None, simple: bool = False,
                    schedule_delay_ms: int = 200, max_queue_size: int = 2048):
    """An SDK TracerProvider that sends spans over OTLP/gRPC to ``endpoint``.

    It is *not* installed globally: a notebook may make several, and the
    global one can be set only once per process. Call ``.shutdown()`` to
    flush and stop it; spans still queued are lost otherwise.
    """
    # Lazy: the gRPC exporter loads grpc (~0.3 s), which `import tracequest.lab.notebook` need not pay.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    kwargs = {"sampler": sampler} if sampler is not None else {}
    provider = TracerProvider(resource=Resource.create({"service.name": service}), **kwargs)
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    if simple:
        processor = SimpleSpanProcessor(exporter)
    else:
        processor = BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_ms,
                                       max_queue_size=max_queue_size, max_export_batch_size=512)
    provider.add_span_processor(processor)
    return provider
