"""The driver service: looks drivers up in Redis (a simulated one, see redis_sim.py).

When Redis times out, the service answers 503 and carries on. The trace hides
that: the span around the Redis call ends with status UNSET and nothing on it
says what went wrong. Its attribute names are home-made, too, so no backend
or dashboard knows what they mean.
"""

import logging
import os

from flask import Flask, jsonify, request
from opentelemetry import trace
from opentelemetry.semconv.attributes.db_attributes import (
    DB_OPERATION_NAME,
    DB_QUERY_TEXT,
    DB_SYSTEM_NAME,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode

import redis_sim
from telemetry import setup_tracing

log = logging.getLogger("driver")
tracer = trace.get_tracer("driver")

app = Flask(__name__)
setup_tracing(app)


@app.get("/driver")
def driver():
    driver_id = request.args.get("id", "T7")
    record = fetch_driver(driver_id)
    if record is None:
        return jsonify(error=f"driver {driver_id} is unavailable"), 503
    return jsonify(record)


def fetch_driver(driver_id: str) -> dict | None:
    key = f"driver:{driver_id}"
    # Wrong on purpose: the key in the span name, a new name for every driver.
    with tracer.start_as_current_span(f"GET {key}", kind=SpanKind.CLIENT) as span:
        span.set_attribute(DB_SYSTEM_NAME, "redis")
        span.set_attribute(DB_OPERATION_NAME, "GET")
        span.set_attribute(DB_QUERY_TEXT, f"GET {key}")
        try:
            return redis_sim.get(key)
        except redis_sim.RedisTimeout as exc:
            log.warning("redis timeout for %s: %s", key, exc)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
            return None


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5005")))
