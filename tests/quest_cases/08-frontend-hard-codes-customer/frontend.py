"""The frontend: takes a ride request and hands it to dispatch.

Only the frontend knows which customer asked. Put the customer id in the
baggage here, and every service downstream can read it without changing
a single API between them.
"""

import os

import requests
from flask import Flask, jsonify, request
from opentelemetry import baggage, context

from telemetry import setup_tracing

DISPATCH_URL = os.environ.get("DISPATCH_URL", "http://127.0.0.1:5082")

app = Flask(__name__)
setup_tracing(app, "frontend")


@app.get("/dispatch")
def dispatch():
    customer = request.args.get("customer", "123")
    # Wrong on purpose: the customer of the README example, not the one asking.
    token = context.attach(baggage.set_baggage("customer.id", "392"))
    try:
        answer = requests.get(f"{DISPATCH_URL}/assign", timeout=5)
    finally:
        context.detach(token)
    return jsonify(customer=customer, **answer.json())


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5081")))
