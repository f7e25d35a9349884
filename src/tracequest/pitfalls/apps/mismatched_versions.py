"""A Flask service run under opentelemetry-instrument: traced only if its packages match.

Nothing in this file is wrong. The pitfall lives in what is installed: when
``opentelemetry-instrumentation-flask`` comes from another release than the
``opentelemetry-instrumentation`` it builds on, importing it fails, and
``opentelemetry-instrument`` logs "Importing of flask failed, skipping it" and
carries on. The service answers as ever; its requests make no SERVER span. The
manual span inside the handler still arrives, so the SDK and the exporter are
fine: only the instrumentation is gone.
"""

import threading
import urllib.request

from flask import Flask
from opentelemetry import trace
from werkzeug.serving import make_server

tracer = trace.get_tracer("prices")
app = Flask("prices")


@app.get("/price")
def price():
    with tracer.start_as_current_span("look up price"):
        return "4.20"


server = make_server("127.0.0.1", 0, app)
threading.Thread(target=server.serve_forever, daemon=True).start()
urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/price", timeout=5).read()
server.shutdown()
