"""What metrics from spans cost: the Collector's CPU and memory with and without spanmetrics.

The same span stream, at a fixed rate, goes through two pipelines of the lab's
own Collector build, one after the other:

  compose/collector/collector.yaml    otlp -> memory_limiter, batch -> Jaeger, debug
  compose/collector/spanmetrics.yaml  the same, plus the spanmetrics connector and the
                                      Prometheus exporter (scraped every 2s when
                                      Prometheus is installed, as in the lab)

Real Jaeger receives the spans in both runs. The stream is prepared before the
clock starts (OTLP/HTTP protobuf, 100 spans a request, 10 spans a trace, 5
services x 8 operations, 5 % errors, durations from 1 ms to 2 s), so the
sender's own cost stays small and the rate exact. For each pipeline: a short
warm-up, then RATE spans/s for SECONDS seconds, during which the Collector's
CPU time (user + system, from psutil) and its resident memory (sampled every
0.5 s) are measured. At the end the Collector's own metrics must show every
span accepted, or the numbers would flatter a Collector that refused work.

Runs in well under two minutes: `python benchmarks/collector_cost.py`.
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracequest.host import procs
from tracequest.programs.collector import collector_env, ensure_collector
from tracequest.programs.jaeger import ensure_jaeger, jaeger_env
from tracequest.host.ports import Ports
from tracequest.programs.prometheus import find_prometheus, prometheus_process

ROOT = Path(__file__).resolve().parents[1]
RATE = 2000             # spans per second
SECONDS = 20            # measured window
WARMUP = 3              # seconds at the same rate before measuring
PER_REQUEST = 100       # spans per export request
SPANS_PER_TRACE = 10
SERVICES = [f"svc-{i}" for i in range(5)]
OPERATIONS = [f"GET /op/{i}" for i in range(8)]
ERROR_SHARE = 0.05
PIPELINES = {"without spanmetrics": "collector.yaml", "with spanmetrics": "spanmetrics.yaml"}


def _value(attr, key: str, text: str) -> None:
    attr.key, attr.value.string_value = key, text


def prepared_requests(count: int, rng: random.Random) -> list[bytes]:
    """``count`` export requests of PER_REQUEST spans each, one service per request."""
    bodies = []
    now = time.time_ns()
    for _ in range(count):
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        _value(rs.resource.attributes.add(), "service.name", rng.choice(SERVICES))
        _value(rs.resource.attributes.add(), "telemetry.sdk.language", "python")
        ss = rs.scope_spans.add()
        ss.scope.name = "benchmarks.collector_cost"
        for i in range(PER_REQUEST):
            if i % SPANS_PER_TRACE == 0:
                trace_id, parent = rng.randbytes(16), b""
            span = ss.spans.add()
            span.trace_id, span.span_id, span.parent_span_id = trace_id, rng.randbytes(8), parent
            parent = parent or span.span_id
            span.name = rng.choice(OPERATIONS)
            span.kind = 2 if not span.parent_span_id else 3           # SERVER root, CLIENT children
            duration = int(min(2000, rng.lognormvariate(3, 1.2)) * 1_000_000)   # ~1 ms .. 2 s
            span.start_time_unix_nano, span.end_time_unix_nano = now, now + duration
            if rng.random() < ERROR_SHARE:
                span.status.code = 2
            _value(span.attributes.add(), "http.route", span.name.split(" ", 1)[1])
        bodies.append(request.SerializeToString())
    return bodies


def send_at_rate(url: str, bodies: list[bytes], rate: float) -> tuple[float, int]:
    """Post ``bodies`` at ``rate`` spans/s on a fixed schedule; (seconds taken, failed requests)."""
    session = requests.Session()
    interval = PER_REQUEST / rate
    started, failed = time.perf_counter(), 0
    for i, body in enumerate(bodies):
        delay = started + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        response = session.post(url, data=body, timeout=10,
                                headers={"Content-Type": "application/x-protobuf"})
        failed += response.status_code != 200
    return time.perf_counter() - started, failed


def accepted_spans(metrics_url: str) -> int:
    """Spans the Collector's OTLP receiver accepted, from its own metrics."""
    text = requests.get(metrics_url, timeout=5).text
    return int(sum(float(v) for v in re.findall(
        r"^otelcol_receiver_accepted_spans(?:_total)?\{[^}]*\} ([0-9.e+]+)$", text, re.M)))


def start(name: str, argv: list[str], env: dict, home: Path, ready_url: str) -> procs.Child:
    child = procs.start(name, argv, home / f"{name}.log", procs.environment(env, scrub=True), cwd=ROOT)
    if not child.wait_ready(lambda: procs.answers_http(ready_url), 60):
        tail = "\n".join(child.tail(20))
        child.stop()
        raise SystemExit(f"{name} did not become ready at {ready_url}:\n{tail}")
    return child


def measure(collector: Path, config: str, ports: Ports, home: Path, bodies: list[bytes],
            warmup: list[bytes]) -> dict:
    """One pipeline: start the Collector, warm it up, measure it under the stream, stop it."""
    child = start("collector", [str(collector), "--config", str(ROOT / "compose/collector" / config)],
                  collector_env(ports), home, f"http://127.0.0.1:{ports.collector_health}/")
    try:
        url = f"http://127.0.0.1:{ports.otlp_http}/v1/traces"
        send_at_rate(url, warmup, RATE)
        process = psutil.Process(child.pid)
        sampler = procs.MemorySampler(child.pid)
        cpu_before = process.cpu_times()
        sampler.start()
        elapsed, failed = send_at_rate(url, bodies, RATE)
        cpu_after = process.cpu_times()
        rss = sampler.stop()
        cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        sent = (len(warmup) + len(bodies)) * PER_REQUEST
        metrics = f"http://127.0.0.1:{ports.collector_metrics}/metrics"
        accepted = procs.until(lambda: (n := accepted_spans(metrics)) >= sent and n, 10) \
            or accepted_spans(metrics)
        return {"cpu": 100 * cpu / elapsed, "rss_mean": sum(rss) / len(rss) / 2**20,
                "rss_peak": max(rss) / 2**20, "rate": len(bodies) * PER_REQUEST / elapsed,
                "accepted": accepted, "sent": sent, "failed": failed}
    finally:
        child.stop()


def main() -> int:
    collector = ensure_collector(log=lambda line: print(f"[collector build] {line}", file=sys.stderr))
    jaeger = ensure_jaeger(log=lambda line: print(f"[jaeger build] {line}", file=sys.stderr))
    prometheus = find_prometheus()
    rng = random.Random(7)
    bodies = prepared_requests(RATE * SECONDS // PER_REQUEST, rng)
    warmup = prepared_requests(RATE * WARMUP // PER_REQUEST, rng)
    ports = Ports.free()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        children = [start("jaeger", [str(jaeger), "--config", str(ROOT / "compose/jaeger/config.yaml")],
                          jaeger_env(ports), home, f"http://127.0.0.1:{ports.query}/api/v3/services")]
        try:
            if prometheus:   # scrapes the spanmetrics run as the lab does; idle in the other run
                argv, env, ready = prometheus_process(ports, home, binary=prometheus)
                children.append(start("prometheus", argv, env, home, ready))
            for label, config in PIPELINES.items():
                results[label] = measure(collector, config, ports, home, bodies, warmup)
        finally:
            for child in reversed(children):
                child.stop()

    print(f"Collector {collector.name}: {RATE} spans/s for {SECONDS}s after {WARMUP}s warm-up, "
          f"{len(SERVICES)} services x {len(OPERATIONS)} operations, "
          f"{'Prometheus scraping every 2s' if prometheus else 'no Prometheus installed (no scrapes)'}; "
          f"{os.cpu_count()} CPUs")
    header = f"{'pipeline':<22} {'CPU % of a core':>15} {'RSS mean MiB':>13} {'RSS peak MiB':>13} " \
             f"{'spans/s sent':>13} {'accepted/sent':>15}"
    print(header)
    print("-" * len(header))
    for label, r in results.items():
        print(f"{label:<22} {r['cpu']:>15.1f} {r['rss_mean']:>13.1f} {r['rss_peak']:>13.1f} "
              f"{r['rate']:>13.0f} {r['accepted']:>7}/{r['sent']:<7}")
    base, with_sm = results["without spanmetrics"], results["with spanmetrics"]
    print(f"{'spanmetrics adds':<22} {with_sm['cpu'] - base['cpu']:>+15.1f} "
          f"{with_sm['rss_mean'] - base['rss_mean']:>+13.1f} {with_sm['rss_peak'] - base['rss_peak']:>+13.1f}")
    lost = [label for label, r in results.items() if r["accepted"] < r["sent"] or r["failed"]]
    if lost:
        print(f"NOT every span was accepted in: {', '.join(lost)}; the numbers above understate the work")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
