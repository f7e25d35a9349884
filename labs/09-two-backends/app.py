"""The timetable service: GET /departures/<stop> answers with a stop's next departures.

Nothing to change here; the quest is in collector.yaml. The service sends its
spans to one address, the collector's OTLP port, and knows nothing of Jaeger,
Zipkin or Prometheus: which backends get a copy, and which numbers are
counted on the way, is decided in the collector, without touching the code.
"""

import os

from flask import Flask, abort, jsonify
from opentelemetry import trace

from telemetry import setup_tracing

# Departures per stop, as (line, time); a real service would read a database.
TIMETABLE = {
    "harbour": [("12", "07:40"), ("31", "07:52"), ("12", "08:10"), ("31", "08:22")],
    "station": [("4", "07:35"), ("4", "07:50"), ("18", "08:05")],
    "museum": [("18", "07:45"), ("31", "08:01"), ("18", "08:15"), ("4", "08:30")],
}
SHOWN = 3  # departures in an answer

tracer = trace.get_tracer("timetable")
app = Flask(__name__)
setup_tracing(app)


@app.get("/departures/<stop>")
def departures(stop: str):
    # Flask names the request's SERVER span after the route, "GET /departures/<stop>",
    # the same for every stop: one operation, one row of metrics.
    with tracer.start_as_current_span("read timetable") as span:
        span.set_attribute("timetable.stop", stop)
        rows = TIMETABLE.get(stop)
        if rows is None:
            abort(404)
        span.set_attribute("timetable.rows", len(rows))
    with tracer.start_as_current_span("pick next departures") as span:
        upcoming = sorted(rows, key=lambda row: row[1])[:SHOWN]
        span.set_attribute("timetable.shown", len(upcoming))
    return jsonify(stop=stop, departures=[{"line": line, "at": at} for line, at in upcoming])


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5009")))
