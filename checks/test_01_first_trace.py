"""Quest 01, your first trace: the ETA service sends its spans over OTLP, under its own name."""

import pytest

from tracequest.quests.describe import list_spans, spans_of, trace_of
from tracequest.quests.failure import fail

pytestmark = pytest.mark.quest("01")

SETUP_HINT = ("in setup_tracing(), build a TracerProvider with a BatchSpanProcessor around "
              "OTLPSpanExporter() from opentelemetry.exporter.otlp.proto.grpc.trace_exporter "
              "(the check's receiver speaks gRPC), and pass it to trace.set_tracer_provider(). "
              "Give the exporter no endpoint: it reads OTEL_EXPORTER_OTLP_ENDPOINT.")


def test_the_eta_service_sends_a_named_trace(run):
    """GET /eta arrives as one trace: a SERVER span with a child, from service 'eta'."""
    eta = run.app("app.py", name="eta")
    run.start()
    answer = eta.get("/eta?pickup=B7")
    if answer.status_code != 200:
        fail("GET /eta?pickup=B7 to answer 200", f"it answered {answer.status_code}.",
             "run python app.py and open http://127.0.0.1:5001/eta to see the error.",
             details=eta.tail())
    traces = run.traces()
    spans = spans_of(traces)

    if not spans:
        fail("spans from the ETA service at the check's OTLP receiver",
             "no spans arrived at all: the tracer provider is missing, or it exports elsewhere.",
             SETUP_HINT)

    unnamed = sorted({s.service for s in spans if s.service.startswith("unknown_service")})
    if unnamed:
        fail("every span to say which service made it (service.name 'eta')",
             f"the spans arrived as service {unnamed[0]!r}, the SDK's placeholder name.",
             "create the TracerProvider with resource=Resource.create({'service.name': SERVICE_NAME}).")

    servers = [s for s in spans if s.kind == "SERVER" and "/eta" in s.name]
    if not servers:
        fail("a SERVER span for the request, named 'GET /eta'",
             f"the backend got {list_spans(spans)}, but no SERVER span.",
             "call FlaskInstrumentor().instrument_app(app) in setup_tracing(), so every "
             "request Flask handles opens a SERVER span.")

    server = servers[0]
    if not server.children:
        others = [s for s in spans if s is not server]
        where = (f"the other spans ({list_spans(others)}) sit in other traces" if others
                 else "'estimate minutes' never arrived: the tracer in app.py records nothing")
        fail("'estimate minutes' (opened in app.py) as a child of 'GET /eta'",
             f"'GET /eta' has no children; {where}.",
             "app.py's tracer comes from the global provider: pass your provider to "
             "trace.set_tracer_provider(), not only to the Flask instrumentation.",
             trace=trace_of(traces, server))
