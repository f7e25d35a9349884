"""Quest 01, your first trace: the ETA service sends its spans over OTLP, under its own name."""

import pytest

from tracequest.expect import select
from tracequest.expect.failure import fail

pytestmark = pytest.mark.quest("01")

SERVICE = "eta"   # SERVICE_NAME in telemetry.py: the name the README asks for
SETUP_HINT = ("no span arrived at all: the tracer provider is missing, or it exports elsewhere. "
              "In setup_tracing(), build a TracerProvider with a BatchSpanProcessor around "
              "OTLPSpanExporter() from opentelemetry.exporter.otlp.proto.grpc.trace_exporter "
              "(the check's receiver speaks gRPC), and pass it to trace.set_tracer_provider(). "
              "Give the exporter no endpoint: it reads OTEL_EXPORTER_OTLP_ENDPOINT.")
UNNAMED_HINT = ("the spans carry the SDK's placeholder name: create the TracerProvider with "
                "resource=Resource.create({'service.name': SERVICE_NAME}).")
RENAMED_HINT = (f"the quest names the service exactly: service.name must be SERVICE_NAME, "
                f"{SERVICE!r}, as written, so `tracequest traces --service {SERVICE}` finds it.")
FLASK_HINT = ("call FlaskInstrumentor().instrument_app(app) in setup_tracing(), so every "
              "request Flask handles opens a SERVER span.")
GLOBAL_HINT = ("app.py's tracer comes from the global provider: pass your provider to "
               "trace.set_tracer_provider(), not only to the Flask instrumentation.")


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

    spans = select(traces).named("spans from the ETA service at the check's OTLP receiver")
    spans.expect_count(at_least=1, hint=SETUP_HINT)

    unnamed = any(s.service.startswith("unknown_service") for s in spans)
    spans.named("the spans").expect_attribute("service.name", equals=SERVICE,
                                              hint=UNNAMED_HINT if unnamed else RENAMED_HINT)

    request = select(traces, kind="SERVER", name="GET /eta").named("SERVER spans 'GET /eta'")
    request.expect_count(exactly=1, hint=FLASK_HINT)

    select(traces, name="estimate minutes").named("'estimate minutes' (opened in app.py)") \
        .expect_child_of(request, hint=GLOBAL_HINT)
