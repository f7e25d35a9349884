"""The route service: works out how long the drive takes.

Nothing to change here; the quest is in telemetry.py.
"""

import os

from flask import Flask, jsonify, request
from opentelemetry import trace

from telemetry import setup_tracing

app = Flask(__name__)
setup_tracing(app, "route")
tracer = trace.get_tracer("route")


@app.get("/route")
def route():
    customer = request.args.get("customer", "123")
    with tracer.start_as_current_span("compute route") as span:
        minutes = 2 + sum(map(ord, customer)) % 12
        span.set_attribute("route.minutes", minutes)
    return jsonify(minutes=minutes)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5062")))
