"""Quest 09, two backends and a metric: one collector fans every trace out to Jaeger and
Zipkin, and counts the calls on the way with the spanmetrics connector.

The check loads the learner's collector.yaml in the real collector and reads
its shape first: what the file alone can tell (an exporter defined but not
listed, a connector joined to one pipeline only, a metrics pipeline nothing
flows into, an address the check cannot reach) fails at once, with the most
specific cause. Then it runs the file in the fan-out lab, on free ports bound
to 127.0.0.1: the real Jaeger, the real Zipkin and Prometheus behind it. The
given timetable service is asked for five departures, and the check reads back
through each backend's own API: every request's trace in Jaeger (API v3), the
same trace with as many spans in Zipkin (API v2), and in Prometheus the
request spans counted exactly once each.
"""

import pytest
import yaml

from tracequest.expect import select
from tracequest.host.ports import HOST
from tracequest.host.procs import settled
from tracequest.programs.prometheus import JOB
from tracequest.quests.collector_config import JAEGER_ENDPOINT, CollectorConfig, jaeger_exporter_fault, kind_of
from tracequest.quests.collector_run import CollectorRun
from tracequest.expect.failure import QuestFailure, fail

SERVICE = "timetable"
OPERATION = "GET /departures/<stop>"   # Flask names the SERVER span after the route
STOPS = ("harbour", "station", "museum", "harbour", "station")
MAX_FLUSH_S = 10.0          # the longest metrics_flush_interval the check waits for
SCRAPE_S = 2.0              # the lab's Prometheus scrapes every 2 s
CALLS = '{{__name__=~".+_calls_total",service_name="{service}",span_name="{operation}"}}'
DURATIONS = '{{__name__=~".+_duration_.+_count",service_name="{service}",span_name="{operation}"}}'

STEP_ZIPKIN = ("define an exporter of type zipkin with endpoint: "
               "${env:TQ_ZIPKIN_ENDPOINT:-http://127.0.0.1:9411/api/v2/spans}, and list it in the "
               "traces pipeline's exporters beside otlp/jaeger")
STEP_CONNECTOR = ("spanmetrics is a connector: the exporter end of the traces pipeline and the "
                  "receiver end of a metrics pipeline. Define it under connectors: (spanmetrics: "
                  "with metrics_flush_interval: 5s), add it to the traces pipeline's exporters, and "
                  "write a metrics pipeline with receivers: [spanmetrics] and exporters: [prometheus]")


@pytest.mark.quest("09")
def test_every_trace_reaches_jaeger_and_zipkin_and_is_counted(run):
    """Each request's trace is in Jaeger and Zipkin alike, and counted once in Prometheus."""
    with CollectorRun(run.folder / "collector.yaml", backend="fan-out") as collector:
        _validate(collector)
        config = CollectorConfig.read(collector.config)
        env = collector.environment()
        fed = _check_fan_out(config, env)
        flush_s = _check_span_metrics(config, env, fed)
        collector.start()

        app = run.app("app.py", name=SERVICE, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_endpoint})
        run.start()
        for stop in STOPS:
            _ask_for_departures(app, stop)
        run.stop()  # SIGTERM: the service flushes its last spans to the collector

        traces = _traces_in_jaeger(collector, config, fed)
        requests = select(traces, service=SERVICE, kind="SERVER", name=OPERATION).named(
            f"{SERVICE}'s request spans '{OPERATION}' in Jaeger")
        requests.expect_count(exactly=len(STOPS), hint=(
            f"the check asked {len(STOPS)} times; each request leaves one SERVER span. app.py is "
            "given and needs no change; if you edited it, put it back as it was."))
        _compare_with_zipkin(collector, config, fed, traces)
        _check_calls_counted(collector, config, fed, flush_s)


# --- what the file alone tells ----------------------------------------------------------

def _validate(collector: CollectorRun) -> None:
    """The collector's own verdict; a connector joined on one side only gets a closer look."""
    try:
        collector.validate()
    except QuestFailure as refused:
        if "connector" in refused.found:
            _explain_one_sided_connector(collector, refused)
        raise


def _explain_one_sided_connector(collector: CollectorRun, refused: QuestFailure) -> None:
    """The collector refuses a connector used on one side; say which side is missing."""
    try:
        config = CollectorConfig.read(collector.config)
    except (OSError, yaml.YAMLError):   # broken YAML: the collector's words are the best we have
        return
    said = refused.found.removeprefix("the collector refused it: ")
    traces = [p for p in config.pipelines("traces") if p.exporters_of_kind("spanmetrics")]
    metrics = [p for p in config.pipelines("metrics") if p.receivers_of_kind("spanmetrics")]
    if traces and not metrics:
        others = config.pipelines("metrics")
        found = (f"service.pipelines.{traces[0].name} exports to spanmetrics, but no metrics "
                 "pipeline receives from it"
                 + (f" (service.pipelines.{others[0].name} receives from "
                    f"[{', '.join(others[0].receivers)}])" if others else
                    " (there is no metrics pipeline)") + f". The collector says: {said}")
        hint = ("a connector joins two pipelines, so it must be listed in both: write a metrics "
                "pipeline with receivers: [spanmetrics] and exporters: [prometheus]."
                if not others else
                f"write receivers: [spanmetrics] in service.pipelines.{others[0].name}: the "
                "spans become metrics inside the collector, and the connector is where they come out.")
        raise QuestFailure("the spanmetrics connector joined to both pipelines: exporter of the "
                           "traces pipeline and receiver of a metrics pipeline", found, hint) from None
    if metrics and not traces:
        fed = ([p for p in config.pipelines("traces") if p.receivers_of_kind("otlp")]
               or config.pipelines("traces"))
        shown = f"exporters: [{', '.join(fed[0].exporters)}]" if fed else "no traces pipeline"
        raise QuestFailure(
            "the spanmetrics connector joined to both pipelines: exporter of the traces pipeline "
            "and receiver of a metrics pipeline",
            f"service.pipelines.{metrics[0].name} receives from spanmetrics, but no traces "
            "pipeline sends to it "
            f"({shown}). The collector says: {said}",
            "add spanmetrics to the traces pipeline's exporters: a connector only passes on "
            "what a pipeline hands it, and the spans it counts come from the traces pipeline.") from None


def _check_fan_out(config: CollectorConfig, env: dict) -> list:
    """The pipelines that get the service's spans must export to Jaeger and to the check's Zipkin."""
    traces = config.pipelines("traces")
    fed = [p for p in traces if p.receivers_of_kind("otlp")]
    if not fed:
        fail("a traces pipeline that receives from otlp, as in the starter",
             f"no traces pipeline lists the otlp receiver ({', '.join(p.name for p in traces) or 'none'}).",
             "keep the starter's traces pipeline with receivers: [otlp]: the service sends its "
             "spans to that receiver.")
    listed = _exporters(fed)
    exporters = config.section("exporters")
    if not [e for e in listed if kind_of(e) == "otlp"]:
        defined = [name for name in exporters if kind_of(name) == "otlp"]
        fail("the traces pipeline to export to Jaeger (otlp/jaeger) and to Zipkin",
             f"exporters: [{', '.join(listed)}]: nothing goes to Jaeger.",
             (f"{defined[0]} is still defined, but no pipeline lists it. Two backends means two "
              f"exporters in the list, side by side: exporters: [{defined[0]}, zipkin, ...]; "
              "adding Zipkin does not replace Jaeger." if defined else
              f"put back the starter's otlp/jaeger exporter (endpoint: {JAEGER_ENDPOINT}, "
              "tls: insecure: true) and list it beside zipkin."))
    zipkins = [e for e in listed if kind_of(e) == "zipkin"]
    if not zipkins:
        defined = list(config.defined("exporters", "zipkin"))
        fail("the traces pipeline to export to Zipkin as well as to Jaeger",
             f"exporters: [{', '.join(listed)}]: nothing goes to Zipkin.",
             (f"{defined[0]} is defined under exporters, but the pipeline does not list it. An "
              f"exporter does nothing until a pipeline lists it: add {defined[0]} to "
              "service.pipelines.traces.exporters, beside otlp/jaeger." if defined else STEP_ZIPKIN + "."))
    wanted = env["TQ_ZIPKIN_ENDPOINT"]
    sends_to = {name: config.resolve(exporters.get(name, {}).get("endpoint") or "", env) for name in zipkins}
    if not any(url.rstrip("/") == wanted for url in sends_to.values()):
        name, url = next(iter(sends_to.items()))
        fail(f"{name} to send to the check's Zipkin, at {wanted}",
             f"it sends to {url or 'no endpoint'}.",
             "write endpoint: ${env:TQ_ZIPKIN_ENDPOINT:-http://127.0.0.1:9411/api/v2/spans}: the "
             "check starts Zipkin on a free port and passes its address in TQ_ZIPKIN_ENDPOINT, "
             "and `tracequest up` passes the lab's Zipkin the same way.")
    return fed


def _check_span_metrics(config: CollectorConfig, env: dict, fed: list) -> float:
    """spanmetrics fed by the traces pipeline, into a metrics pipeline, out to Prometheus; its flush."""
    feeding = [p for p in fed if p.exporters_of_kind("spanmetrics")]
    metrics = config.pipelines("metrics")
    receiving = [p for p in metrics if p.receivers_of_kind("spanmetrics")]
    expected = "a metrics pipeline that receives from the spanmetrics connector, fed by the traces pipeline"
    if not receiving:
        if not metrics:
            fail(expected, "no connector turns the spans into metrics yet (the file has no metrics "
                 "pipeline).", STEP_CONNECTOR + ".")
        pipeline = metrics[0]
        fail(expected,
             f"service.pipelines.{pipeline.name} receives from [{', '.join(pipeline.receivers)}], "
             "and nothing sends metrics to the collector here: that pipeline never receives any.",
             "the metrics in this quest are made from spans, inside the collector, by the "
             "spanmetrics connector. "
             + ("" if config.defined("connectors", "spanmetrics") else
                "Define it under connectors: (metrics_flush_interval: 5s). ")
             + f"Write receivers: [spanmetrics] in service.pipelines.{pipeline.name}, and add "
             "spanmetrics to the traces pipeline's exporters.")
    if not feeding:   # the collector refuses this; a connector fed by another pipeline lands here
        fail(expected, f"{receiving[0].name} receives from spanmetrics, but the pipeline that gets the "
             f"service's spans does not export to it (exporters: [{', '.join(_exporters(fed))}]).",
             "add spanmetrics to the exporters of the traces pipeline that receives from otlp.")
    exporters = config.section("exporters")
    prometheus = [e for p in receiving for e in p.exporters if kind_of(e) == "prometheus"]
    if not prometheus:
        shown = ", ".join(e for p in receiving for e in p.exporters)
        to_jaeger = [e for p in receiving for e in p.exporters if kind_of(e) == "otlp"]
        defined = list(config.defined("exporters", "prometheus"))
        fail(f"service.pipelines.{receiving[0].name} to export to a prometheus exporter, for "
             "Prometheus to scrape",
             f"it exports to [{shown}].",
             (f"{to_jaeger[0]} sends to Jaeger, which stores traces, not metrics. " if to_jaeger else "")
             + (f"{defined[0]} is defined under exporters: list it in the exporters of "
                f"service.pipelines.{receiving[0].name}."
                if defined else
                "Define an exporter of type prometheus with endpoint: "
                "${env:TQ_COLLECTOR_HOST:-127.0.0.1}:${env:TQ_SPANMETRICS_PORT:-9464}, and list it "
                f"in the exporters of service.pipelines.{receiving[0].name}: it serves the metrics "
                "for Prometheus to scrape."))
    port = env["TQ_SPANMETRICS_PORT"]
    serves_at = {name: config.resolve(exporters.get(name, {}).get("endpoint") or "", env)
                 for name in prometheus}
    if not any(address.rpartition(":")[2] == port for address in serves_at.values()):
        name, address = next(iter(serves_at.items()))
        fail(f"{name} to serve the metrics where the check's Prometheus scrapes: {HOST}:{port}",
             f"it serves them at {address or 'its default address, 0.0.0.0:8889'}.",
             "write endpoint: ${env:TQ_COLLECTOR_HOST:-127.0.0.1}:${env:TQ_SPANMETRICS_PORT:-9464}: "
             "the check's Prometheus scrapes a free port it passes in TQ_SPANMETRICS_PORT, and "
             "the lab's (`tracequest up`) scrapes the port in it too, 9464 unless you move it.")
    connectors = {name for p in feeding for name in p.exporters_of_kind("spanmetrics")}
    flush = max(config.duration_s("connectors", name, "metrics_flush_interval", env, 60.0)
                for name in connectors)
    if flush > MAX_FLUSH_S:
        name = sorted(connectors)[0]
        written = config.section("connectors").get(name, {}).get("metrics_flush_interval")
        fail(f"{name} to hand on its counts every few seconds (metrics_flush_interval at most "
             f"{MAX_FLUSH_S:.0f}s)",
             (f"metrics_flush_interval: {written}." if written is not None else
              "no metrics_flush_interval: the connector's default is 60s."),
             f"write metrics_flush_interval: 5s under {name}: with a minute between flushes, "
             "Prometheus (and you, watching it) would see a request's count a minute late.")
    return flush


def _exporters(pipelines: list) -> list[str]:
    return list(dict.fromkeys(e for p in pipelines for e in p.exporters))


# --- what the backends hold -----------------------------------------------------------------

def _ask_for_departures(app, stop: str) -> None:
    answer = app.get(f"/departures/{stop}")
    if answer.status_code != 200 or not answer.json().get("departures"):
        fail(f"GET /departures/{stop} to answer 200 with departures",
             f"it answered {answer.status_code}.",
             "app.py is given and needs no change; if you edited it, put it back as it was "
             "(git checkout labs/09-two-backends/app.py).", details=app.tail())


def _batch_wait(config: CollectorConfig, env: dict, fed: list) -> float:
    """The longest a batch processor on the way holds spans before sending them."""
    waits = [config.duration_s("processors", name, "timeout", env, 0.2)
             for p in fed for name in p.processors_of_kind("batch")]
    return min(max(waits, default=0.2), 10.0)


def _traces_in_jaeger(collector: CollectorRun, config: CollectorConfig, fed: list) -> list:
    """Every trace of the service in Jaeger, once it holds all their spans."""
    client, waits = collector.client, _batch_wait(config, collector.environment(), fed)

    def sizes():
        return {t.trace_id: len(t) for t in client.find_traces(SERVICE, lookback_s=600, limit=100)}

    found = settled(sizes, not_before=waits + 1.5, settle=1.5, timeout=waits + 15)
    if not found:
        fail(f"the traces of {len(STOPS)} requests to {SERVICE} in Jaeger, through your collector",
             f"Jaeger holds no spans of {SERVICE}: the service sent them to your collector, and "
             "none reached Jaeger.",
             _no_spans_in_jaeger_hint(config, fed), details=collector.log_tail())
    return [client.get_trace(trace_id) for trace_id in found]


def _no_spans_in_jaeger_hint(config: CollectorConfig, fed: list) -> str:
    name = next(e for e in _exporters(fed) if kind_of(e) == "otlp")
    return (jaeger_exporter_fault(config, name)
            or "the collector's output below says what went wrong when it exported.")


def _compare_with_zipkin(collector: CollectorRun, config: CollectorConfig, fed: list, traces: list) -> None:
    """Zipkin must hold each of Jaeger's traces with the very same spans."""
    def counts():
        held = {t.trace_id: len(collector.zipkin_trace(t.trace_id)) for t in traces}
        return held if any(held.values()) else None   # nothing yet: settled() is patient

    if not settled(counts, settle=1.5, timeout=20, patience=15):   # Jaeger has them: Zipkin is close
        fail(f"the {len(traces)} traces of {SERVICE} in Zipkin as well",
             f"Jaeger holds all {len(traces)}; Zipkin holds none of them.",
             "the zipkin exporter is listed and aims at the check's Zipkin, yet nothing arrived: "
             "the collector's output below says why it could not export.", details=collector.log_tail())
    for trace in traces:
        held = collector.zipkin_trace(trace.trace_id)
        if len(held) == len(trace):
            continue
        ids = {span.get("id") for span in held}
        missing = [s for s in trace.spans if s.span_id not in ids]
        extra = [s.get("name", "?") for s in held if s.get("id") not in {x.span_id for x in trace.spans}]
        differ = (f"missing in Zipkin: {', '.join(f'{s.name!r} ({s.kind})' for s in missing[:3])}"
                  if missing else f"in Zipkin only: {', '.join(map(repr, extra[:3]))}")
        fail(f"each trace in Zipkin with as many spans as in Jaeger ({len(trace)} in trace "
             f"{trace.trace_id[:12]}…)",
             f"Zipkin holds {len(held)} of its spans, Jaeger {len(trace)}; {differ}.",
             _different_spans_hint(config, fed), trace=trace)


def _different_spans_hint(config: CollectorConfig, fed: list) -> str:
    """Why one backend gets fewer spans: different pipelines, different processors."""
    to_jaeger = [p for p in fed if any(kind_of(e) == "otlp" for e in p.exporters)]
    to_zipkin = [p for p in fed if p.exporters_of_kind("zipkin")]
    if to_jaeger and to_zipkin and to_jaeger[0] != to_zipkin[0]:
        extra = [x for x in to_zipkin[0].processors if x not in to_jaeger[0].processors]
        return (f"Zipkin gets its spans through {to_zipkin[0].name}"
                + (f", which also runs {', '.join(extra)}: what that drops never reaches Zipkin" if extra else
                   f", Jaeger through {to_jaeger[0].name}")
                + ". Both backends should hold the same traces: list otlp/jaeger and zipkin "
                "together in one traces pipeline, after the same processors.")
    return ("both exporters sit in the same pipeline, so they should see the same spans: the "
            "collector's output says whether zipkin failed to export some of them.")


def _check_calls_counted(collector: CollectorRun, config: CollectorConfig, fed: list,
                         flush_s: float) -> None:
    """Prometheus holds the request's call count and duration count: one per request, no more."""
    calls_q = CALLS.format(service=SERVICE, operation=OPERATION)
    durations_q = DURATIONS.format(service=SERVICE, operation=OPERATION)

    def totals():
        counted = tuple(sum(s.value for s in collector.metric(q)) for q in (calls_q, durations_q))
        return counted if counted[0] else None   # a new series' first flush reads 0 calls

    # By now every span has passed the connector (Jaeger and Zipkin hold them all). The
    # connector reports a series it has just created as 0 calls, and the full count at the
    # flush after that; the next scrape brings it to Prometheus. A loaded machine can be
    # late with each step, so no count waits for the whole timeout, and a count must hold
    # for longer than one scrape interval to count as final.
    timeout = 2 * flush_s + 20
    calls, durations = settled(totals, not_before=flush_s + SCRAPE_S + 0.5, settle=SCRAPE_S + 0.5,
                               timeout=timeout, patience=timeout) or (0, 0)
    wanted = len(STOPS)
    expected = (f"{SERVICE}'s '{OPERATION}' counted {wanted} times in Prometheus: {wanted} requests, "
                "one SERVER span each")
    if not calls:
        fail(expected, _what_prometheus_has(collector, timeout), _no_metric_hint(collector),
             details=collector.log_tail())
    if calls != wanted or durations != wanted:
        feeding = [p.name for p in config.pipelines("traces") if p.exporters_of_kind("spanmetrics")]
        name = next((s.labels.get("__name__") for s in collector.metric(calls_q)), "the call counter")
        fail(expected, f"{name} counts {calls:g} calls and the duration histogram {durations:g}.",
             (f"spanmetrics is fed by {len(feeding)} pipelines ({', '.join(feeding)}), and each hands "
              "it every span it receives: every span is counted once per pipeline. Feed the connector "
              "from one pipeline only." if len(feeding) > 1 else
              "each span should be counted once: check what else feeds spanmetrics."))


def _what_prometheus_has(collector: CollectorRun, waited_s: float) -> str:
    up = collector.metric(f'up{{job="{JOB}"}}')
    if not up or not up[0].value:
        return "Prometheus could not scrape your collector's prometheus exporter."
    series = collector.metric('{__name__=~".+_calls_total"}')
    if not series:
        return "Prometheus scrapes your collector's prometheus exporter, and it serves no call counts."
    seen = sorted({f"{s.labels.get('service_name', '?')} '{s.labels.get('span_name', '?')}'" for s in series})
    if f"{SERVICE} '{OPERATION}'" in seen:   # the series is there: its count was late
        now = sum(s.value for s in series if s.labels.get("service_name") == SERVICE
                  and s.labels.get("span_name") == OPERATION)
        return (f"Prometheus read 0 calls for {SERVICE} '{OPERATION}' for {waited_s:g} s after the "
                "spans reached Jaeger (the connector reports a new series as 0 at its first flush, "
                "and the count at the next)"
                + (f"; it reads {now:g} now, so the machine was slow." if now else "."))
    return (f"Prometheus has call counts only for {', '.join(seen[:4])}"
            + (f" and {len(seen) - 4} more" if len(seen) > 4 else "")
            + f", none for {SERVICE} '{OPERATION}'.")


def _no_metric_hint(collector: CollectorRun) -> str:
    return ("the metrics pipeline goes from spanmetrics to the prometheus exporter; the collector's "
            "output below says whether one of them failed. Keep the connector's default "
            "dimensions and names: the check looks for the calls of service_name and span_name.")
