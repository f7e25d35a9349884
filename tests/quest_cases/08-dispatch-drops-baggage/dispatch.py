"""The dispatch service: picks a driver and asks notifier to tell the customer.

Nothing to change here. It never looks at the baggage; it passes it on
because the requests instrumentation sends the current baggage along.
"""

import os

import requests
from flask import Flask, jsonify
from opentelemetry import baggage, context

from telemetry import setup_tracing

NOTIFIER_URL = os.environ.get("NOTIFIER_URL", "http://127.0.0.1:5083")

app = Flask(__name__)
setup_tracing(app, "dispatch")


@app.get("/assign")
def assign():
    driver = "T7"
    # Wrong on purpose: the customer is taken out of the baggage before the call.
    token = context.attach(baggage.remove_baggage("customer.id"))
    try:
        requests.get(f"{NOTIFIER_URL}/notify", params={"driver": driver}, timeout=5)
    finally:
        context.detach(token)
    return jsonify(driver=driver)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5082")))
