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
from opentelemetry import baggage, trace  # noqa: F401  (you will need them)
from opentelemetry.propagate import extract, inject  # noqa: F401
from opentelemetry.trace import Link, SpanKind  # noqa: F401

from telemetry import setup_tracing

app = Flask(__name__)
setup_tracing(app, "notifier")
tracer = trace.get_tracer("notifier")
outbox: queue.Queue = queue.Queue()


@app.get("/notify")
def notify():
    driver = request.args.get("driver", "T7")
    # TODO 2: Read "customer.id" from the baggage (baggage.get_baggage) and
    #         record it on the current span (trace.get_current_span()) as the
    #         attribute "customer.id".
    publish({"text": f"Driver {driver} is on the way.", "headers": {}})
    return jsonify(queued=True)


def publish(message: dict) -> None:
    with tracer.start_as_current_span("outbox publish", kind=SpanKind.PRODUCER):
        # TODO 3: Write the current context into the message's own headers
        #         with inject(message["headers"]), as a message broker would
        #         carry them, so the worker knows which span queued it.
        outbox.put(message)


def worker() -> None:
    while True:
        message = outbox.get()
        # TODO 4: Start the span below in a new trace *linked* to the span
        #         that queued the message: extract(message["headers"]) gives a
        #         context; trace.get_current_span(that).get_span_context() is
        #         the producer's span context; pass links=[Link(it)].
        with tracer.start_as_current_span("outbox process", kind=SpanKind.CONSUMER) as span:
            span.set_attribute("messaging.message.body.size", len(message["text"]))
            time.sleep(0.02)  # the SMS gateway


# A daemon thread, so the service can still exit (and flush its spans) on SIGTERM.
threading.Thread(target=worker, name="outbox-worker", daemon=True).start()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5083")))
