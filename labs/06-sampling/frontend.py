"""The frontend: every /dispatch asks the route service for a route.

Nothing to change here; the quest is in telemetry.py.
"""

import os

import requests
from flask import Flask, jsonify, request

from telemetry import setup_tracing

ROUTE_URL = os.environ.get("ROUTE_URL", "http://127.0.0.1:5062")

app = Flask(__name__)
setup_tracing(app, "frontend")
session = requests.Session()


@app.get("/dispatch")
def dispatch():
    customer = request.args.get("customer", "123")
    route = session.get(f"{ROUTE_URL}/route", params={"customer": customer}, timeout=5).json()
    return jsonify(customer=customer, eta_minutes=route["minutes"])


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5061")))
