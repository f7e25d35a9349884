"""The shop: GET /basket?items=tea,milk asks the prices service for each item's
price, in parallel, in a thread pool.

Fixed: requests is instrumented, and each task runs in the request's context.
"""

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor

import requests
from flask import Flask, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.propagate import inject

from telemetry import setup_tracing

setup_tracing("shop")

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)

PRICES_URL = os.environ.get("PRICES_URL", "http://127.0.0.1:5102")
pool = ThreadPoolExecutor(max_workers=4)


def price_of(item: str) -> float:
    headers = {}
    inject(headers)  # traceparent by hand, but no CLIENT span for the call
    answer = requests.get(f"{PRICES_URL}/price", params={"item": item}, headers=headers, timeout=10)
    answer.raise_for_status()
    return float(answer.text)


@app.get("/basket")
def basket():
    items = [item for item in request.args.get("items", "tea").split(",") if item]
    # Each task runs in a copy of this request's context (one copy per task: a
    # context cannot be entered by two threads at once).
    tasks = [pool.submit(contextvars.copy_context().run, price_of, item) for item in items]
    prices = [task.result() for task in tasks]
    return {"items": items, "total": round(sum(prices), 2)}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5101")), threaded=True)
