"""The notifier: queues a text message for the customer, sent by a background worker.

Two things to do here. The notifier never gets the customer id as a parameter;
it can read it from the baggage. And the worker sends each message later, in
a trace of its own: a span link can point back at the span that queued it.
"""

import os
import queue
import threading
import time

from flask import Flask, jsonify, request
from opentelemetry import baggage, trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Link, SpanKind

from telemetry import setup_tracing

app = Flask(__name__)
setup_tracing(app, "notifier")
tracer = trace.get_tracer("notifier")
outbox: queue.Queue = queue.Queue()


@app.get("/notify")
def notify():
    driver = request.args.get("driver", "T7")
    customer = baggage.get_baggage("customer.id")
    if customer is not None:
        trace.get_current_span().set_attribute("customer.id", str(customer))
    publish({"text": f"Driver {driver} is on the way.", "headers": {}})
    return jsonify(queued=True)


def publish(message: dict) -> None:
    # Wrong on purpose: the headers name the request span, not the PRODUCER span, and
    # the worker continues that context instead of linking to it.
    inject(message["headers"])
    with tracer.start_as_current_span("outbox publish", kind=SpanKind.PRODUCER):
        outbox.put(message)


def worker() -> None:
    while True:
        message = outbox.get()
        producer = trace.get_current_span(extract(message["headers"])).get_span_context()
        # A new trace (the message may wait for hours), linked back to its producer.
        with tracer.start_as_current_span("outbox process", kind=SpanKind.CONSUMER,
                                          context=extract(message["headers"])) as span:
            span.set_attribute("messaging.message.body.size", len(message["text"]))
            time.sleep(0.02)  # the SMS gateway


# A daemon thread, so the service can still exit (and flush its spans) on SIGTERM.
threading.Thread(target=worker, name="outbox-worker", daemon=True).start()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5083")))
