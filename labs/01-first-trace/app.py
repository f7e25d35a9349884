"""The ETA service: how many minutes until a driver reaches a pickup point.

This file already speaks the OpenTelemetry *API*: it gets a tracer and opens a
span around the estimate. On its own the API records nothing; every call is a
cheap no-op until an SDK is installed. Installing one is your job, in
telemetry.py. You do not need to change this file.
"""

import os
import time

from flask import Flask, jsonify, request
from opentelemetry import trace

from telemetry import setup_tracing

tracer = trace.get_tracer("eta")

app = Flask(__name__)
setup_tracing(app)


@app.get("/eta")
def eta():
    pickup = request.args.get("pickup", "A1")
    return jsonify(pickup=pickup, minutes=estimate_minutes(pickup))


def estimate_minutes(pickup: str) -> int:
    with tracer.start_as_current_span("estimate minutes") as span:
        span.set_attribute("eta.pickup", pickup)
        time.sleep(0.02)  # stands in for a call to a traffic model
        minutes = 3 + sum(map(ord, pickup)) % 9
        span.set_attribute("eta.minutes", minutes)
        return minutes


if __name__ == "__main__":
    # No debug reloader: it starts the app twice and loses instrumentation.
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5001")))
