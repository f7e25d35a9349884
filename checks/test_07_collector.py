"""Quest 07, through the Collector: the learner's collector.yaml between a service and Jaeger.

The check loads the file in the real collector, judges the order of its
processors, then runs it in front of the real Jaeger on free ports. It starts
the given accounts service with only the collector's address, asks it for three
accounts, and reads the traces back from Jaeger: they must be there, and the
customers' e-mail addresses, which the service puts in user.email, must not be
anywhere in them. Only user.email may change: the other attributes stay.
"""

import pytest

from tracequest.expect import select
from tracequest.host.procs import settled
from tracequest.quests.collector_config import JAEGER_ENDPOINT, CollectorConfig, jaeger_exporter_fault, kind_of
from tracequest.quests.collector_run import CollectorRun
from tracequest.expect.failure import fail

SERVICE = "accounts"
ACCOUNT_IDS = ("1", "2", "3")
KEPT_ATTRIBUTE = "account.plan"    # not personal: must survive the collector


@pytest.mark.quest("07")
def test_spans_reach_jaeger_through_your_collector_without_raw_emails(run):
    """Spans reach Jaeger through your pipeline, with no raw e-mail address."""
    with CollectorRun(run.folder / "collector.yaml") as collector:
        collector.validate()
        config = CollectorConfig.read(collector.config)
        pipeline = config.traces_pipeline()
        _check_processor_order(pipeline)
        collector.start()

        app = run.app("app.py", name=SERVICE, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_endpoint})
        run.start()
        answers = [_ask_for_account(app, account_id) for account_id in ACCOUNT_IDS]
        run.stop()  # SIGTERM: the service flushes its last spans to the collector

        client = collector.client
        batches = pipeline.processors_of_kind("batch")
        waits = min(config.duration_s("processors", batches[0], "timeout",
                                      collector.environment(), 0.2), 10.0)
        sizes = settled(lambda: _trace_sizes(client), not_before=waits + 1.5, settle=1.5,
                        timeout=waits + 15)
        if not sizes:
            fail(f"the spans of {len(ACCOUNT_IDS)} requests to {SERVICE} in Jaeger, through your collector",
                 f"Jaeger holds no spans of {SERVICE}: the service sent them to your collector, "
                 "and none came out the other side.",
                 _no_spans_hint(config, pipeline), details=collector.log_tail())
        traces = [client.get_trace(trace_id) for trace_id in sizes]

    emails = [answer["email"] for answer in answers]
    leaking = select(traces).matching(lambda s: any(e in text for e in emails for text in _texts(s)),
                                      "holding a raw e-mail address")
    leaked = [e for e in emails if any(e in text for s in leaking for text in _texts(s))]
    leaking.named("spans in Jaeger that hold a raw e-mail address").expect_count(exactly=0, hint=(
        f"{leaked[0]} is still there, as {_where(leaking, leaked[0])}"
        + (f" ({len(leaked)} of {len(emails)} addresses leaked). " if len(leaked) > 1 else ". ")
        + _raw_email_hint(config, pipeline) if leaked else ""))

    loads = sorted(select(traces, name="load account").each(), key=lambda one: one.spans[0].start_ns)
    for load, answer in zip(loads, answers):
        load.named(f"the 'load account' span of account {answer['id']}").expect_attribute(
            KEPT_ATTRIBUTE, equals=answer["plan"],
            hint="only user.email may change: hash or delete the key user.email and nothing else. "
                 "A pattern or an action that matches more keys removes or scrambles what you "
                 "need for debugging.")


def _check_processor_order(pipeline) -> None:
    order = pipeline.processors
    why_first = ("it can refuse data when memory runs short only if it sees the data before any "
                 "other processor has spent memory on it.")
    if not order or kind_of(order[0]) != "memory_limiter":
        if not order:
            found = "the pipeline has no processors yet (processors: [])."
        elif pipeline.processors_of_kind("memory_limiter"):
            found = f"{pipeline.shown()}: {order[0]} comes first."
        else:
            found = f"{pipeline.shown()}: there is no memory_limiter."
        hint = (f"move memory_limiter to the front of the list: {why_first}"
                if pipeline.processors_of_kind("memory_limiter") else
                "define a memory_limiter under processors (check_interval: 1s, limit_mib: 400, "
                f"spike_limit_mib: 100) and list it first: {why_first}")
        fail("memory_limiter first in service.pipelines.traces.processors", found, hint)
    if kind_of(order[-1]) != "batch":
        listed = bool(pipeline.processors_of_kind("batch"))
        found = f"{pipeline.shown()}: " + ("batch is not last." if listed else "there is no batch processor.")
        fail("batch last in service.pipelines.traces.processors", found,
             ("move batch to the end of the list" if listed else
              "define a batch processor (timeout: 1s) and list it last")
             + ", right before the exporters: it should group what the other processors let "
             "through into fewer, larger export requests.")


def _ask_for_account(app, account_id: str) -> dict:
    answer = app.get(f"/account/{account_id}")
    record = answer.json() if answer.status_code == 200 else {}
    if not record.get("email"):
        fail(f"GET /account/{account_id} to answer 200 with the account's email",
             f"it answered {answer.status_code}.",
             "app.py is given and needs no change; if you edited it, put it back as it was "
             "(git checkout labs/07-collector/app.py).", details=app.tail())
    return record


def _trace_sizes(client) -> dict[str, int]:
    """Span count per trace of the service in Jaeger: it settles when every span is in."""
    return {t.trace_id: len(t) for t in client.find_traces(SERVICE, lookback_s=600, limit=100)}


def _no_spans_hint(config: CollectorConfig, pipeline) -> str:
    """Why nothing left the collector for Jaeger, as far as the file tells."""
    exporters = config.section("exporters")
    listed = f"exporters: [{', '.join(pipeline.exporters)}]"
    to_jaeger = [name for name in pipeline.exporters if kind_of(name) == "otlp"]
    if not to_jaeger:
        defined = [name for name in exporters if kind_of(name) == "otlp"]
        if defined:
            return (f"{defined[0]} is defined under exporters, but the pipeline does not list it "
                    f"({listed}): add it to service.pipelines.traces.exporters.")
        if any(kind_of(name) == "otlphttp" for name in pipeline.exporters):
            return ("${env:TQ_JAEGER_OTLP_ENDPOINT} is Jaeger's OTLP/gRPC address: send to it "
                    "with an exporter of type otlp, not otlphttp.")
        return (f"the pipeline sends only to {listed}. Define an exporter of type otlp (for "
                f"example otlp/jaeger) with endpoint: {JAEGER_ENDPOINT} "
                "and tls: insecure: true, and list it under the pipeline's exporters.")
    return (jaeger_exporter_fault(config, to_jaeger[0])
            or "the collector's output below says what went wrong when it exported.")


def _raw_email_hint(config: CollectorConfig, pipeline) -> str:
    """What to do about user.email, as far as the file tells."""
    listed = pipeline.processors_of_kind("attributes")
    defined = list(config.defined("processors", "attributes"))
    if not defined:
        return ("add an attributes processor (for example attributes/pii) with the action "
                "key: user.email, action: hash (or action: delete), and list it in the pipeline "
                "between memory_limiter and batch.")
    if not listed:
        return (f"{defined[0]} is defined under processors, but the pipeline does not list it "
                f"({pipeline.shown()}). A processor does nothing until a pipeline lists it: put "
                f"{defined[0]} between memory_limiter and batch.")
    actions = [a for name in listed
               for a in (config.section("processors").get(name, {}).get("actions") or [])
               if isinstance(a, dict)]
    on_email = [a for a in actions if a.get("key") == "user.email"]
    if not on_email:
        keys = [str(a.get("key") or a.get("pattern")) for a in actions]
        return (f"{listed[0]} has no action for key: user.email (its actions name "
                f"{', '.join(keys) or 'nothing'}); the key must match the attribute exactly.")
    action = on_email[0].get("action")
    if action not in ("hash", "delete"):
        return (f"{listed[0]} does `action: {action}` on user.email; use action: hash (keeps "
                "the value joinable without the address) or action: delete.")
    return ("the attributes processor is in place, yet the address got through: check that "
            "nothing else in the pipeline copies it into another attribute.")


def _texts(span) -> list[str]:
    """Every text a span carries into the store: its name, attributes, events, links, resource."""
    values = [span.name, *span.attributes.values(), *span.resource.values()]
    values += [v for event in span.events for v in (event.name, *event.attributes.values())]
    values += [v for link in span.links for v in link.attributes.values()]
    return [str(v) for v in values]


def _where(spans, email: str) -> str:
    """'user.email on the span "load account"', or where else the value sits."""
    for span in spans:
        for key, value in span.attributes.items():
            if email in str(value):
                return f"{key} on the span '{span.name}'"
    return "part of a stored span"
