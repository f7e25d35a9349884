"""The embedded backend at workshop scale: 1,000,000 spans, then a retention bound.

What it does, in order:

1. Starts the embedded backend as its own process (``python -m tracequest.backend``,
   SQLite file in a temporary directory, no retention bound) on free ports.
2. Sends ``--spans`` spans of demo-like traces (four services, ~50 spans a
   trace, each service exporting its own batches of 512 as the SDK's batch
   processor does) through the real OTLP/HTTP receiver as protobuf, from
   four concurrent exporters; prints the ingest rate and checks that nothing
   was lost.
3. Prints the backend's RSS and the database's size on disk.
4. Times each query over real HTTP (p50/p95 of ``--repeat`` runs): trace
   search by service, by operation, by duration, ``/api/v3/services``,
   ``/api/v3/operations``, the home page ``/`` and ``/dependencies``.
5. Restarts the backend on the same file with ``--max-spans`` (a quarter of
   the spans sent, at least 10,000), keeps sending, and prints the span count
   every few batches: it must stay at or under the bound, with every stored
   trace whole.

Separately it times ``SpanStore.add`` alone (no HTTP) on the same batches, so
the cost of the store's indexes and summary table shows on its own.

    .venv/bin/python benchmarks/store_scale.py             # 1,000,000 spans (several minutes)
    .venv/bin/python benchmarks/store_scale.py --spans 100000
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tracequest.host.ports import HOST, free_port
from tracequest.backend.store import SpanStore
from tracequest.traces.timefmt import format_rfc3339

BATCH = 512
EXPORTERS = 4
SERVICES = ("frontend", "customer", "driver", "route")
SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL


# --- demo-like traffic ------------------------------------------------------------

def demo_trace(rng: random.Random, start_ns: int) -> list[tuple]:
    """One /dispatch-like trace: (service, span) pairs, 50 spans over four services."""
    trace_id = rng.randbytes(16)
    spans: list[tuple] = []

    def add(service, name, kind, parent, offset_ms, duration_ms, error=False, **attributes):
        span = Span(trace_id=trace_id, span_id=rng.randbytes(8), name=name, kind=kind,
                    start_time_unix_nano=start_ns + int(offset_ms * 1e6))
        span.end_time_unix_nano = span.start_time_unix_nano + int(duration_ms * 1e6)
        if parent is not None:
            span.parent_span_id = parent.span_id
        if error:
            span.status.code, span.status.message = 2, "redis timeout"
        for key, value in attributes.items():
            kv = span.attributes.add()
            kv.key = key.replace("_", ".")
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = str(value)
        spans.append((service, span))
        return span

    customer = rng.choice(("123", "392", "731", "567"))
    root = add("frontend", "GET /dispatch", SERVER, None, 0, rng.uniform(500, 1200),
               http_method="GET", http_route="/dispatch", customer_id=customer)
    call = add("frontend", "GET customer", CLIENT, root, 1, 320, http_method="GET")
    server = add("customer", "GET /customer", SERVER, call, 2, 315, http_route="/customer", customer_id=customer)
    add("customer", "SELECT customers", CLIENT, server, 3, rng.uniform(250, 310), db_system="mysql",
        db_statement=f"SELECT * FROM customer WHERE customer_id={customer}")
    call = add("frontend", "driver.DriverService/FindNearest", CLIENT, root, 330, 200)
    server = add("driver", "driver.DriverService/FindNearest", SERVER, call, 331, 198, rpc_system="grpc")
    add("driver", "FindDriverIDs", CLIENT, server, 332, 20, db_system="redis")
    for i in range(13):
        add("driver", "GetDriver", CLIENT, server, 352 + 12 * i, rng.uniform(5, 40),
            error=rng.random() < 0.05, db_system="redis", driver_id=f"T7{rng.randrange(10**5):05d}C")
    for i in range(10):
        offset = 540 + 30 * (i // 3)
        call = add("frontend", "GET route", CLIENT, root, offset, 60, http_method="GET")
        server = add("route", "GET /route", SERVER, call, offset + 1, 58, http_route="/route")
        add("route", "compute route", INTERNAL, server, offset + 2, rng.uniform(20, 55))
    return spans


def resource_for(service: str, request: ExportTraceServiceRequest):
    rs = request.resource_spans.add()
    for key, value in (("service.name", service), ("telemetry.sdk.language", "python"),
                       ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.version", "1.45.1"),
                       ("host.name", "workshop-laptop"), ("process.pid", str(4000 + SERVICES.index(service)))):
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = f"tracequest.demo.{service}", "0.1"
    return ss


def demo_batches(total_spans: int, seed: int = 8) -> list[bytes]:
    """Export bodies of BATCH spans, each from one service, traces spread over consecutive batches.

    Timestamps are the last minutes before now, so a one-hour search window
    covers them all.
    """
    rng = random.Random(seed)
    pending: dict[str, list[Span]] = {s: [] for s in SERVICES}
    bodies: list[bytes] = []
    made, i = 0, 0
    base = time.time_ns() - total_spans // 50 * 10_000_000 - 60_000_000_000
    while made < total_spans:
        for service, span in demo_trace(rng, base + i * 10_000_000)[:total_spans - made]:
            pending[service].append(span)
            made += 1
            if len(pending[service]) == BATCH:
                bodies.append(_body(service, pending[service]))
                pending[service] = []
        i += 1
    bodies += [_body(s, spans) for s, spans in pending.items() if spans]
    return bodies


def _body(service: str, spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest()
    resource_for(service, request).spans.extend(spans)
    return request.SerializeToString()


# --- the backend process ---------------------------------------------------------

class BackendProcess:
    """``python -m tracequest.backend`` on free ports, stopped on exit."""

    def __init__(self, db: Path, max_spans: int):
        self.http_port, self.query_port = free_port(), free_port()
        argv = [sys.executable, "-m", "tracequest.backend", "--db", str(db), "--host", HOST,
                "--grpc-port", str(free_port()), "--http-port", str(self.http_port),
                "--query-port", str(self.query_port), "--max-spans", str(max_spans), "--max-age", "0"]
        self.log = open(db.with_suffix(".log"), "ab")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.query_url = f"http://{HOST}:{self.query_port}"
        self.traces_url = f"http://{HOST}:{self.http_port}/v1/traces"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"backend exited with {self.process.returncode}; see {self.log.name}")
            try:
                requests.get(self.query_url + "/api/v3/services", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise SystemExit("backend did not answer within 60s")

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def send(url: str, bodies: list[bytes], exporters: int = EXPORTERS) -> tuple[float, list[int]]:
    """Post every body from concurrent exporters; (seconds taken, failed status codes)."""
    failures: list[int] = []

    def exporter(mine: list[bytes]) -> None:
        session = requests.Session()
        for body in mine:
            r = session.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=60)
            if r.status_code != 200:
                failures.append(r.status_code)

    threads = [threading.Thread(target=exporter, args=(bodies[i::exporters],)) for i in range(exporters)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, failures


def stored(db: Path) -> tuple[int, int, int]:
    """(spans, traces, traces whose summary disagrees with their span rows), read from the file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        spans = con.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
        traces = con.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
        cut = con.execute("SELECT COUNT(*) FROM traces t WHERE span_count != "
                          "(SELECT COUNT(*) FROM spans WHERE trace_seq = t.seq)").fetchone()[0]
    return spans, traces, cut


def disk_mb(db: Path) -> float:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 2**20


# --- queries -------------------------------------------------------------------------

def queries(url: str) -> dict[str, tuple[str, dict]]:
    now = time.time_ns() + 10**9
    window = {"query.start_time_min": format_rfc3339(now - 3600 * 10**9),
              "query.start_time_max": format_rfc3339(now), "query.num_traces": "20"}
    return {
        "search by service": ("/api/v3/traces", {**window, "query.service_name": "driver"}),
        "search by operation": ("/api/v3/traces", {**window, "query.service_name": "route",
                                                   "query.operation_name": "compute route"}),
        "search by duration": ("/api/v3/traces", {**window, "query.service_name": "frontend",
                                                  "query.duration_min": "1100ms"}),
        "search, nothing matches": ("/api/v3/traces", {**window, "query.service_name": "frontend",
                                                       "query.duration_min": "5s"}),
        "/api/v3/services": ("/api/v3/services", {}),
        "/api/v3/operations": ("/api/v3/operations", {"service": "driver"}),
        "home page /": ("/", {}),
        "/dependencies": ("/dependencies", {}),
    }


def time_queries(url: str, repeat: int, backend: psutil.Process) -> dict[str, tuple]:
    """name -> (first request ms, p50 ms, p95 ms, backend CPU ms per request, last status).

    The first request is shown apart: /dependencies keeps each trace's calls
    until the trace changes, so its later requests are cheaper. Backend CPU
    time per request does not depend on what else the machine is doing.
    """
    session = requests.Session()
    results = {}
    for name, (path, params) in queries(url).items():
        took, status = [], 0
        cpu = backend.cpu_times()
        for _ in range(repeat + 1):
            started = time.perf_counter()
            response = session.get(url + path, params=params, timeout=60)
            took.append((time.perf_counter() - started) * 1000)
            status = response.status_code
        after = backend.cpu_times()
        cpu_ms = ((after.user + after.system) - (cpu.user + cpu.system)) * 1000 / (repeat + 1)
        first, rest = took[0], sorted(took[1:])
        results[name] = (first, statistics.median(rest), rest[max(0, round(0.95 * len(rest)) - 1)], cpu_ms, status)
    return results


def time_store_add(bodies: list[bytes], db: Path) -> tuple[float, float]:
    """(spans per second, spans per CPU-second) of SpanStore.add alone, on bodies decoded beforehand."""
    requests_ = [ExportTraceServiceRequest.FromString(b) for b in bodies]
    store = SpanStore(db, max_spans=0, max_age_s=0)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        total = sum(store.add(r) for r in requests_)
        return total / (time.perf_counter() - started), total / (time.process_time() - cpu)
    finally:
        store.close()


# --- main --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to ingest")
    parser.add_argument("--repeat", type=int, default=40, help="requests per query for p50/p95")
    parser.add_argument("--retention-rounds", type=int, default=4,
                        help="times to resend a quarter of the traffic with the bound set")
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="tq-store-scale-") as tmp:
        db = Path(tmp) / "spans.db"
        print(f"generating {args.spans:,} spans of demo-like traces ... "
              f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
        bodies = demo_batches(args.spans)

        add_rate, add_cpu_rate = time_store_add(bodies[: max(1, len(bodies) // 5)], Path(tmp) / "add-only.db")
        print(f"SpanStore.add alone (no HTTP, first {max(1, len(bodies) // 5)} batches): {add_rate:,.0f} spans/s, "
              f"{add_cpu_rate:,.0f} spans per CPU-second")

        backend = BackendProcess(db, max_spans=0)
        try:
            process = psutil.Process(backend.process.pid)
            cpu_before = sum(process.cpu_times()[:2])
            elapsed, failures = send(backend.traces_url, bodies)
            cpu_s = sum(process.cpu_times()[:2]) - cpu_before
            spans, traces, cut = stored(db)
            print(f"ingest: {args.spans:,} spans in {elapsed:.1f}s through OTLP/HTTP protobuf, "
                  f"{EXPORTERS} concurrent exporters, batches of {BATCH}")
            print(f"ingest rate: {args.spans / elapsed:,.0f} spans/s; the backend's CPU time: "
                  f"{cpu_s * 1e6 / args.spans:.1f} us a span ({args.spans / cpu_s:,.0f} spans per CPU-second)")
            print(f"stored: {spans:,} spans in {traces:,} traces (lost {args.spans - spans}), "
                  f"failed requests: {len(failures)}")
            ok &= spans == args.spans and not failures
            print(f"backend RSS: {backend.rss_mb():.0f} MB   disk: {disk_mb(db):.0f} MB")
            print(f"\nqueries at {spans:,} spans over real HTTP: the first request, then p50 / p95 of "
                  f"{args.repeat} more, and the backend's CPU time per request")
            print(f"  {'':<26} {'first':>8}  {'p50':>8}  {'p95':>8}  {'CPU/req':>8}")
            timings = time_queries(backend.query_url, args.repeat, psutil.Process(backend.process.pid))
            for name, (first, p50, p95, cpu_ms, status) in timings.items():
                flag = "" if p95 <= 100 else "   <-- over 100 ms"
                print(f"  {name:<26} {first:5.1f} ms  {p50:5.1f} ms  {p95:5.1f} ms  {cpu_ms:5.1f} ms"
                      f"   (HTTP {status}){flag}")
                ok &= p95 <= 100
        finally:
            backend.stop()

        bound = max(10_000, args.spans // 4)
        print(f"\nretention: restarting with --max-spans {bound:,} and sending more traffic")
        backend = BackendProcess(db, max_spans=bound)
        try:
            spans, traces, cut = stored(db)
            print(f"  after restart: {spans:,} spans, {traces:,} traces, {cut} cut traces")
            ok &= spans <= bound and cut == 0
            for round_ in range(1, args.retention_rounds + 1):
                fresh = demo_batches(bound, seed=100 + round_)   # new traces every round
                elapsed, failures = send(backend.traces_url, fresh)
                spans, traces, cut = stored(db)
                print(f"  round {round_}: sent {bound:,} more in {elapsed:.1f}s "
                      f"({bound / elapsed:,.0f} spans/s); store holds {spans:,} spans "
                      f"(bound {bound:,}) in {traces:,} traces, {cut} cut, failed requests: {len(failures)}; "
                      f"RSS {backend.rss_mb():.0f} MB, disk {disk_mb(db):.0f} MB")
                ok &= spans <= bound and cut == 0 and not failures
        finally:
            backend.stop()
    print(f"\nload average at the end (2 cores shared): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
