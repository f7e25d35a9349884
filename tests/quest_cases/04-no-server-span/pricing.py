"""The pricing service: a bare http.server, with no instrumentation library to help.

It opens its own SERVER span for each request. Without the caller's context
that span has no parent, so every request starts a brand-new trace.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind

from telemetry import setup_tracing

setup_tracing("pricing")
tracer = trace.get_tracer("pricing")


class PriceHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        caller = extract(self.headers)  # the context named by the traceparent header
        # Wrong on purpose: the context is read, but no SERVER span is opened with it.
        with tracer.start_as_current_span(f"GET {url.path}", kind=SpanKind.INTERNAL,
                                          context=caller) as span:
            span.set_attribute("http.request.method", "GET")
            span.set_attribute("url.path", url.path)
            km = float(parse_qs(url.query).get("km", ["5"])[0])
            time.sleep(0.01)  # the price list lookup
            body = json.dumps({"price": round(2.5 + 1.2 * km, 2)}).encode()
            span.set_attribute("http.response.status_code", 200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "5042"))), PriceHandler)
    server.daemon_threads = True
    server.serve_forever()
