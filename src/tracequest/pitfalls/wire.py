"""What answers on a port, in which protocol, and whether a span makes the round trip.

OTLP/gRPC is HTTP/2; OTLP/HTTP is (nearly always) HTTP/1.1. A server of either
kind answers the other's opening bytes with something recognisable, so two
small probes tell them apart without sending any telemetry.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping

from tracequest.host import procs
from tracequest.pitfalls.findings import Finding, bad, good
from tracequest.pitfalls.otel_env import ExporterSettings
from tracequest.traces.client import BackendUnavailable, QueryClient, TraceNotFound

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
HTTP1_REQUEST = b"GET / HTTP/1.1\r\nHost: doctor\r\nConnection: close\r\n\r\n"
SETTINGS_FRAME = 0x04
PROBE_TIMEOUT = 1.0


def _exchange(host: str, port: int, data: bytes) -> bytes | None:
    """Send ``data``, return the first bytes of the answer (b'' if none), None if nothing listens."""
    try:
        sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
    except OSError:
        return None
    try:
        sock.sendall(data)
        return sock.recv(64)
    except OSError:
        return b""
    finally:
        sock.close()


def speaks(host: str, port: int) -> str:
    """'grpc' (HTTP/2), 'http' (HTTP/1.1), 'other', or 'closed' when nothing listens."""
    answer = _exchange(host, port, H2_PREFACE)
    if answer is None:
        return "closed"
    if len(answer) >= 9 and answer[3] == SETTINGS_FRAME:
        return "grpc"
    if answer.startswith(b"HTTP/1.") or (_exchange(host, port, HTTP1_REQUEST) or b"").startswith(b"HTTP/1."):
        return "http"
    return "other"


def check_port(settings: ExporterSettings) -> list[Finding]:
    """Does the endpoint's port answer, and in the exporter's protocol?"""
    where = f"{settings.host}:{settings.port}"
    heard = speaks(settings.host, settings.port)
    wanted = "http" if settings.is_http else "grpc"
    if heard == "closed":
        return [bad("ports", "nothing-listens", f"nothing listens at {where}",
                    "start the backend (`tracequest up`) or correct the endpoint's port")]
    if heard == wanted:
        return [good("ports", f"{where} answers {'OTLP/HTTP (HTTP/1.1)' if heard == 'http' else 'gRPC (HTTP/2)'}")]
    if heard == "http":
        return [bad("ports", "grpc-to-http-server", f"{where} answers HTTP/1.1 (OTLP/HTTP), but the "
                    "exporter speaks gRPC", "send gRPC to the gRPC port (4317), or set "
                    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")]
    if heard == "grpc":
        return [bad("ports", "http-to-grpc-server", f"{where} answers HTTP/2 (gRPC), but the exporter "
                    f"speaks {settings.protocol}", "send OTLP/HTTP to the HTTP port (4318), or set "
                    "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")]
    return [bad("ports", "not-otlp", f"{where} answers, but neither as HTTP/1.1 nor as HTTP/2",
                "point the endpoint at an OTLP receiver")]


def round_trip(env: Mapping[str, str], query_url: str, timeout: float = 5.0) -> list[Finding]:
    """Export one span through the exporter the environment configures, then find it by trace id."""
    # Lazy, as the exporters below: only a round trip needs the SDK, and `tracequest --help` should not load it.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    settings = ExporterSettings.from_env(env)
    # The exporter logs each failed attempt; the finding below says it once, plainly.
    logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
    exporter = _exporter(settings, timeout)
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name or "tracequest-doctor"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    started = time.monotonic()
    with provider.get_tracer("tracequest.doctor").start_as_current_span("doctor round trip") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    client = QueryClient(query_url, timeout=timeout)
    try:
        found = procs.until(lambda: _has(client, trace_id), timeout)
    except BackendUnavailable:
        return [bad("round trip", "no-query-api", f"no query API answers at {query_url}",
                    "start the lab (`tracequest up`) or pass --query-url")]
    if found:
        took = (time.monotonic() - started) * 1000
        return [good("round trip", f"a test span went to {settings.endpoint} and was found at "
                                   f"{query_url} in {took:.0f} ms")]
    return [bad("round trip", "span-lost", f"a test span sent to {settings.endpoint} over "
                f"{settings.protocol} never reached {query_url} (trace {trace_id})",
                "fix the problems above; if there are none, the exporter and the query API belong to "
                "different backends")]


def _has(client: QueryClient, trace_id: str) -> bool:
    try:
        client.get_trace(trace_id)
        return True
    except TraceNotFound:
        return False


def _exporter(settings: ExporterSettings, timeout: float):
    """The exporter the SDK's own set-up would build, with a short timeout."""
    if settings.is_http:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter

        return HTTPExporter(endpoint=settings.endpoint, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCExporter

    insecure = not settings.endpoint.startswith("https")
    return GRPCExporter(endpoint=settings.endpoint, insecure=insecure, timeout=timeout)
