"""A checkout that calls a pricing service with an HTTP client nobody instrumented.

The pricing service is traced (Flask instrumentation), the checkout too, but
urllib sends no ``traceparent`` header, so pricing starts a trace of its own.
Fixed, the call goes through ``requests`` with its instrumentation, which
opens a CLIENT span and injects the header.
"""

import os
import threading
import urllib.request

import requests
from flask import Flask
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from werkzeug.serving import make_server

FIXED = os.environ.get("PITFALL_FIXED") == "1"

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("checkout")

pricing = Flask("pricing")
FlaskInstrumentor().instrument_app(pricing)


@pricing.get("/price")
def price():
    return "4.20"


server = make_server("127.0.0.1", 0, pricing)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/price"

if FIXED:
    RequestsInstrumentor().instrument()

with tracer.start_as_current_span("checkout"):
    if FIXED:
        requests.get(url, timeout=5)  # instrumented: a CLIENT span, and traceparent in the headers
    else:
        urllib.request.urlopen(url, timeout=5).read()  # no instrumentation: no header
server.shutdown()
