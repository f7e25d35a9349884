"""The frontend: quotes a ride by asking the pricing service over plain HTTP.

The call uses http.client, which no OpenTelemetry instrumentation watches. The
CLIENT span around it is already here, but nothing tells pricing about it:
the request leaves without the trace context, and the trace breaks in two.
"""

import json
import os
from http.client import HTTPConnection
from urllib.parse import urlsplit

from flask import Flask, jsonify, request
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.propagate import inject
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, set_span_in_context

from telemetry import setup_tracing

PRICING = urlsplit(os.environ.get("PRICING_URL", "http://127.0.0.1:5042"))

setup_tracing("frontend")
tracer = trace.get_tracer("frontend")
MADE_UP = set_span_in_context(NonRecordingSpan(SpanContext(
    trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7,
    is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)


@app.get("/quote")
def quote():
    km = request.args.get("km", "5")
    return jsonify(km=km, price=ask_pricing(km))


def ask_pricing(km: str) -> float:
    # Wrong on purpose: every call continues one made-up trace instead of the request's.
    with tracer.start_as_current_span("GET /price", kind=SpanKind.CLIENT, context=MADE_UP) as span:
        span.set_attribute("server.address", PRICING.hostname)
        span.set_attribute("server.port", PRICING.port)
        headers = {"Accept": "application/json"}
        inject(headers)  # adds traceparent: this CLIENT span's trace and span id
        connection = HTTPConnection(PRICING.hostname, PRICING.port, timeout=5)
        try:
            connection.request("GET", f"/price?km={km}", headers=headers)
            answer = connection.getresponse()
            span.set_attribute("http.response.status_code", answer.status)
            return json.loads(answer.read())["price"]
        finally:
            connection.close()


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5041")))
