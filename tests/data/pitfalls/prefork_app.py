"""A Flask app whose tracing is set up in gunicorn's master, before it forks its workers.

Run with ``gunicorn --preload``: the master imports this module, so the
TracerProvider, its BatchSpanProcessor thread and the gRPC exporter exist (and
have exported once) before any worker is forked. Older SDKs lost every worker's
spans this way; the SDK now re-creates its thread in each child.
"""

from flask import Flask
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
with trace.get_tracer("boot").start_as_current_span("load catalogue"):
    pass
provider.force_flush()  # the master has used its exporter before the fork

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)


@app.get("/")
def index():
    return "ok"
