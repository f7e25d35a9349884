"""The prices service: GET /price?item=tea answers a price, after a slow lookup.

Fixed: the shared set-up exports over gRPC, to the endpoint the environment names.
"""

import os
import time

from flask import Flask, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor

from telemetry import setup_tracing

provider = setup_tracing("prices")

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)

PRICES = {"tea": 2.5, "milk": 1.1, "bread": 2.2, "coffee": 4.0, "sugar": 0.9}


@app.get("/price")
def price():
    time.sleep(0.1)  # the lookup is slow: that is why the shop asks in parallel
    return str(PRICES.get(request.args.get("item", ""), 1.0))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5102")), threaded=True)
