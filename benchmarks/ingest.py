"""Receiver ingest rate: OTLP/HTTP protobuf batches of 512 spans into the embedded backend.

Several exporters post concurrently, each in its own process as the lab's
services are (in this process they would share the backend's GIL and measure
that instead). At the end every span must be in the store (zero loss) and the
rate is printed in spans per second.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
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


def exporter(url: str, start, failures) -> None:
    """One exporter process: build its batches, wait for the start signal, post them in turn."""
    bodies = [batch() for _ in range(BATCHES_PER_EXPORTER)]
    session = requests.Session()
    start.wait()
    failed = 0
    for body in bodies:
        r = session.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        failed += r.status_code != 200
    failures.put(failed)


def main() -> int:
    # spawn, not fork: the backend's gRPC threads must not be forked.
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, \
            start_backend(Path(tmp) / "spans.db", grpc_port=0, http_port=0, query_port=0) as backend:
        start, failures = context.Barrier(EXPORTERS + 1), context.Queue()
        url = f"{backend.otlp_http_endpoint}/v1/traces"
        processes = [context.Process(target=exporter, args=(url, start, failures)) for _ in range(EXPORTERS)]
        for process in processes:
            process.start()
        start.wait()
        started = time.perf_counter()
        failed = sum(failures.get(timeout=300) for _ in processes)
        elapsed = time.perf_counter() - started
        for process in processes:
            process.join()
        sent = EXPORTERS * BATCHES_PER_EXPORTER * BATCH
        stored = backend.store.span_count()
    print(f"ingest: {sent} spans in {elapsed:.2f}s from {EXPORTERS} concurrent exporter processes, "
          f"batches of {BATCH} (OTLP/HTTP protobuf, SQLite on disk)")
    print(f"ingest rate: {sent / elapsed:,.0f} spans/s")
    print(f"stored: {stored} of {sent} (lost {sent - stored}), failed requests: {failed}")
    return 0 if stored == sent and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
