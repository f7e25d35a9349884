"""The prices service: GET /price?item=tea answers a price, after a slow lookup.

One of the three bugs of this quest is in this file. See README.md.
"""

import os
import time

from flask import Flask, request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

ENDPOINT = "http://127.0.0.1:4318"  # the OTLP/HTTP port, written into the code
provider = TracerProvider(resource=Resource.create({"service.name": "prices"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=ENDPOINT + "/v1/traces")))
trace.set_tracer_provider(provider)

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)

PRICES = {"tea": 2.5, "milk": 1.1, "bread": 2.2, "coffee": 4.0, "sugar": 0.9}


@app.get("/price")
def price():
    time.sleep(0.1)  # the lookup is slow: that is why the shop asks in parallel
    return str(PRICES.get(request.args.get("item", ""), 1.0))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5102")), threaded=True)
