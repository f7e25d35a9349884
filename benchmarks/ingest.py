"""Receiver ingest rate: OTLP/HTTP protobuf batches of 512 spans into the embedded backend.

Several exporter threads post concurrently; at the end every span must be in
the store (zero loss) and the rate is printed in spans per second.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracequest.backend import start_backend

BATCH = 512
BATCHES_PER_EXPORTER = 40
EXPORTERS = 4


def batch() -> bytes:
    """One export request of BATCH spans from one service, ten spans per trace."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "bench"
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(BATCH):
        span = ss.spans.add()
        if i % 10 == 0:
            trace_id = os.urandom(16)
        span.trace_id, span.span_id, span.name = trace_id, os.urandom(8), f"op-{i % 7}"
        span.kind, span.start_time_unix_nano, span.end_time_unix_nano = 2, now + i, now + i + 1_000_000
        a = span.attributes.add()
        a.key, a.value.string_value = "http.route", "/bench"
    return request.SerializeToString()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, \
            start_backend(Path(tmp) / "spans.db", grpc_port=0, http_port=0, query_port=0) as backend:
        payloads = [[batch() for _ in range(BATCHES_PER_EXPORTER)] for _ in range(EXPORTERS)]
        url = f"{backend.otlp_http_endpoint}/v1/traces"
        failures = []

        def exporter(bodies):
            session = requests.Session()
            for body in bodies:
                r = session.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
                if r.status_code != 200:
                    failures.append(r.status_code)

        threads = [threading.Thread(target=exporter, args=(p,)) for p in payloads]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        sent = EXPORTERS * BATCHES_PER_EXPORTER * BATCH
        stored = backend.store.span_count()
    print(f"ingest: {sent} spans in {elapsed:.2f}s from {EXPORTERS} concurrent exporters, "
          f"batches of {BATCH} (OTLP/HTTP protobuf, SQLite on disk)")
    print(f"ingest rate: {sent / elapsed:,.0f} spans/s")
    print(f"stored: {stored} of {sent} (lost {sent - stored}), failed requests: {len(failures)}")
    return 0 if stored == sent and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
