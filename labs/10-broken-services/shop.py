"""The shop: GET /basket?items=tea,milk asks the prices service for each item's
price, in parallel, in a thread pool.

Two of the three bugs of this quest are in this file. See README.md.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import requests
from flask import Flask, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor

from telemetry import setup_tracing

setup_tracing("shop")

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
    prices = list(pool.map(price_of, items))
    return {"items": items, "total": round(sum(prices), 2)}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5101")), threaded=True)
