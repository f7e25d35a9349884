"""The frontend: takes a ride request and hands it to dispatch.

Only the frontend knows which customer asked. Put the customer id in the
baggage here, and every service downstream can read it without changing
a single API between them.
"""

import os

import requests
from flask import Flask, jsonify, request
from opentelemetry import baggage, context  # noqa: F401  (you will need them)

from telemetry import setup_tracing

DISPATCH_URL = os.environ.get("DISPATCH_URL", "http://127.0.0.1:5082")

app = Flask(__name__)
setup_tracing(app, "frontend")


@app.get("/dispatch")
def dispatch():
    customer = request.args.get("customer", "123")
    # TODO 1: Put the customer id into the baggage under the key "customer.id".
    #         baggage.set_baggage(...) does not change anything by itself: it
    #         returns a new Context. Make that context current with
    #         context.attach(...) for the call below, and detach it afterwards
    #         (context.detach(token)) so it does not leak into other requests.
    answer = requests.get(f"{DISPATCH_URL}/assign", timeout=5)
    return jsonify(customer=customer, **answer.json())


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5081")))
