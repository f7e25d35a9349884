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
from opentelemetry.trace import SpanKind

from telemetry import setup_tracing

PRICING = urlsplit(os.environ.get("PRICING_URL", "http://127.0.0.1:5042"))

setup_tracing("frontend")
tracer = trace.get_tracer("frontend")

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)


@app.get("/quote")
def quote():
    km = request.args.get("km", "5")
    return jsonify(km=km, price=ask_pricing(km))


def ask_pricing(km: str) -> float:
    # Wrong on purpose: no CLIENT span around the call; the header names the request span.
    headers = {"Accept": "application/json"}
    inject(headers)
    connection = HTTPConnection(PRICING.hostname, PRICING.port, timeout=5)
    try:
        connection.request("GET", f"/price?km={km}", headers=headers)
        return json.loads(connection.getresponse().read())["price"]
    finally:
        connection.close()


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5041")))
