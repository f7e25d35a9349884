"""Real Jaeger's storage: Badger keeps traces across `down` and `up`, memory forgets them.

Each test starts the real Jaeger binary through the lab (no demo services: a
few spans from the real OpenTelemetry SDK are enough), stops it, starts it
again in the same lab home, and reads back through the query client.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tracequest.cli import build_parser
from tracequest.traces.client import QueryClient, TraceNotFound
from tracequest.lab import Lab, LabError, LabSettings
from tracequest.cli.options import UsageError, lab_settings
from tracequest.host.ports import Ports

SERVICE = "storage-check"
QUIET = {"log": lambda *_: None}


def send_trace(lab: Lab, children: int = 4) -> tuple[str, set[str]]:
    """One trace (a root and ``children`` children) through the real SDK; its id and span ids."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{lab.ports.otlp_grpc}", insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    span_ids = set()
    with tracer.start_as_current_span("GET /dispatch", kind=SpanKind.SERVER) as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        span_ids.add(format(root.get_span_context().span_id, "016x"))
        for n in range(children):
            with tracer.start_as_current_span(f"step {n}") as child:
                child.set_attribute("step.number", n)
                span_ids.add(format(child.get_span_context().span_id, "016x"))
    provider.shutdown()
    return trace_id, span_ids


@pytest.fixture
def jaeger_lab(tmp_path, jaeger_bin):
    """A lab that runs real Jaeger alone on free ports; stopped at the end of the test."""
    labs = []

    def make(storage: str) -> Lab:
        lab = Lab(LabSettings(backend="jaeger", storage=storage, services=(), ports=Ports.free()),
                  home=tmp_path / storage)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.down(**QUIET)


def test_badger_keeps_traces_across_down_and_up(jaeger_lab):
    lab = jaeger_lab("badger")
    lab.up(**QUIET)
    client = QueryClient(lab.query_url)
    trace_id, span_ids = send_trace(lab)
    before = client.wait_for_trace(trace_id, min_spans=len(span_ids))
    # lab.json says which storage runs, so `down` and `status` in a later shell find the same lab.
    recorded = json.loads(lab.state_path.read_text())["settings"]
    assert recorded["storage"] == "badger"
    assert Lab.from_state(lab.home).settings == lab.settings

    lab.down(**QUIET)
    assert not client.is_up()
    for folder in ("keys", "data"):   # TQ_JAEGER_BADGER_DIR pointed into the lab's home
        assert any((lab.home / "badger" / folder).iterdir()), f"no Badger files in {folder}/"

    lab.up(**QUIET)
    after = client.get_trace(trace_id)
    assert len(after) == len(before) == len(span_ids)
    assert {s.span_id for s in after} == span_ids
    assert {s.name for s in after} == {"GET /dispatch", *(f"step {n}" for n in range(4))}
    assert after.find(name="step 2")[0].attributes["step.number"] == 2
    # The search indexes survived too, not only the spans.
    assert SERVICE in client.services()
    assert [t.trace_id for t in client.find_traces(SERVICE)] == [trace_id]


def test_memory_storage_forgets_on_down(jaeger_lab):
    lab = jaeger_lab("memory")
    lab.up(**QUIET)
    client = QueryClient(lab.query_url)
    trace_id, span_ids = send_trace(lab, children=1)
    assert len(client.wait_for_trace(trace_id, min_spans=len(span_ids))) == 2
    lab.down(**QUIET)
    lab.up(**QUIET)
    with pytest.raises(TraceNotFound):
        client.get_trace(trace_id)
    assert SERVICE not in client.services()
    assert not (lab.home / "badger").exists()


# --- settings, without starting anything -------------------------------------

def test_storage_is_checked_and_round_trips():
    settings = LabSettings(backend="collector", storage="badger")
    assert LabSettings.from_state(json.loads(json.dumps(settings.as_state()))) == settings
    assert LabSettings.from_state({"backend": "jaeger"}).storage == "memory"   # an older lab.json
    with pytest.raises(LabError, match="choose one of: memory, badger"):
        LabSettings(backend="jaeger", storage="disk")
    with pytest.raises(LabError, match="embedded backend always keeps"):
        LabSettings(storage="badger")


def up(*argv: str):
    """The settings `tracequest up ARGV` would start."""
    return lab_settings(build_parser().parse_args(["up", *argv]))


def test_up_takes_storage_only_with_real_jaeger():
    assert up("--backend", "jaeger", "--storage", "badger").storage == "badger"
    assert up("--backend", "fan-out", "--storage", "badger").storage == "badger"
    assert up("--backend", "jaeger").storage == "memory"
    with pytest.raises(UsageError, match="--storage badger applies to --backend jaeger"):
        up("--storage", "badger")
    with pytest.raises(SystemExit):   # argparse: invalid choice
        up("--backend", "jaeger", "--storage", "disk")


def test_badger_lab_runs_the_badger_config_in_its_home(tmp_path, jaeger_bin):
    (jaeger,) = Lab(LabSettings(backend="jaeger", storage="badger"), home=tmp_path)._backend_processes()
    assert jaeger.argv[-1].endswith("compose/jaeger/config-badger.yaml")
    assert jaeger.env["TQ_JAEGER_BADGER_DIR"] == str(tmp_path.resolve() / "badger")
    (memory,) = Lab(LabSettings(backend="jaeger"), home=tmp_path)._backend_processes()
    assert memory.argv[-1].endswith("compose/jaeger/config.yaml")
    assert "TQ_JAEGER_BADGER_DIR" not in memory.env
