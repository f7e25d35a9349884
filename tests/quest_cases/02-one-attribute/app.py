"""The fares service: what a ride of some kilometres costs right now.

Every request already gets a SERVER span ('GET /fare'), but the trace cannot
say where its time goes: the slow part, compute_fare(), happens inside that
span without a span of its own. Give it one.
"""

import os
import time

from flask import Flask, jsonify, request
from opentelemetry import trace

from telemetry import setup_tracing

# How long the pricing model takes; the check sets it, so leave this line alone.
PRICING_DELAY = float(os.environ.get("FARE_DELAY_MS", "300")) / 1000

tracer = trace.get_tracer("fares")

app = Flask(__name__)
setup_tracing(app)


@app.get("/fare")
def fare():
    km = float(request.args.get("km", "5"))
    return jsonify(km=km, fare=compute_fare(km))


def compute_fare(km: float) -> float:
    """Ask the (slow) pricing model for a fare."""
    with tracer.start_as_current_span("compute fare") as span:
        surge = surge_multiplier()
        span.set_attribute("fare.distance_km", km)
        # Wrong on purpose: only one attribute; the surge multiplier is not recorded.
        time.sleep(PRICING_DELAY)  # the pricing model thinking
        price = round((2.5 + 1.2 * km) * surge, 2)
        span.add_event("fare priced", {"fare.amount": price})
        return price


def surge_multiplier() -> float:
    """Busier hours cost more."""
    return 1.5 if time.localtime().tm_hour in (8, 9, 17, 18) else 1.0


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5002")))
