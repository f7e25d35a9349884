"""The real Zipkin server: fetched from Maven Central, bound to 127.0.0.1, fed by the lab's Collector.

A trace made by the real OpenTelemetry SDK goes over OTLP to the fan-out
lab's Collector (the lab's own build), whose zipkin exporter translates it
into Zipkin's JSON and posts it to the real Zipkin server; the test then
reads it back through Zipkin's API v2. The lab is the session's one fan-out
lab (tests/conftest.py), shared with the Lens browser test.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from opentelemetry import trace
from opentelemetry.context import Context

from tracequest.host import procs
from tracequest.programs import zipkin
from tracequest.host.ports import HOST, Ports
from tracequest.lab.sdk import tracer_provider

SERVER, CLIENT, INTERNAL = trace.SpanKind.SERVER, trace.SpanKind.CLIENT, trace.SpanKind.INTERNAL

#: The trace the SDK makes: (service, span name, kind, index of the parent span).
TRACE_SHAPE = [
    ("frontend", "GET /dispatch", SERVER, None),
    ("frontend", "GET /customer", CLIENT, 0),
    ("customer", "GET /customer", SERVER, 1),
    ("customer", "load customer", INTERNAL, 2),
    ("frontend", "GET /driver", CLIENT, 0),
    ("driver", "FindNearest", SERVER, 4),
    ("driver", "redis GetDriver", CLIENT, 5),
]


# --- a trace made with the real SDK, sent over OTLP ----------------------------------------------

@dataclass
class SentTrace:
    """What the SDK sent: the trace id, and per span its id, parent id, name, service and kind."""

    trace_id: str
    spans: list[dict]

    @property
    def services(self) -> list[str]:
        return sorted({span["service"] for span in self.spans})


def send_trace(otlp_endpoint: str, shape=TRACE_SHAPE) -> SentTrace:
    """Make one trace across several services with the real SDK and export it over OTLP/gRPC."""
    services = {service for service, *_ in shape}
    providers = {s: tracer_provider(s, otlp_endpoint, simple=True) for s in services}
    spans = []
    try:
        for service, name, kind, parent in shape:
            context = trace.set_span_in_context(spans[parent]) if parent is not None else Context()
            tracer = providers[service].get_tracer("tracequest.tests")
            spans.append(tracer.start_span(name, context=context, kind=kind))
        for span in reversed(spans):   # children end before their parents
            span.end()
    finally:
        for provider in providers.values():
            provider.shutdown()
    sent = [{"id": f"{span.get_span_context().span_id:016x}",
             "parentId": f"{spans[parent].get_span_context().span_id:016x}" if parent is not None else None,
             "name": name, "service": service, "kind": kind}
            for span, (service, name, kind, parent) in zip(spans, shape)]
    return SentTrace(f"{spans[0].get_span_context().trace_id:032x}", sent)


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def running_zipkin(fan_out_lab):
    """The fan-out lab's Zipkin (started once per session: a JVM takes a while): (URL, pid)."""
    return fan_out_lab.url("zipkin"), fan_out_lab.status()["zipkin"]["pid"]


@pytest.fixture(scope="module")
def sent(running_zipkin, fan_out_lab) -> SentTrace:
    """One SDK trace, through the lab's Collector and its zipkin exporter, until Zipkin holds it all."""
    url, _ = running_zipkin
    sent = send_trace(f"{HOST}:{fan_out_lab.ports.otlp_grpc}")
    procs.until(lambda: len(zipkin.zipkin_trace(url, sent.trace_id)) >= len(sent.spans), 30)
    return sent


# --- the running server -------------------------------------------------------------------------

def test_zipkin_listens_on_127_0_0_1_only(running_zipkin):
    url, pid = running_zipkin
    port = int(url.rsplit(":", 1)[1])
    listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert port in {addr.port for addr in listening}, listening
    assert {addr.ip for addr in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    others = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
              if a.family.name == "AF_INET" and not a.address.startswith("127.")]
    for address in others:   # reachable on loopback, refused on the machine's other addresses
        assert not procs.listens(address, port), f"Zipkin answers on {address}:{port}"


def test_zipkin_serves_lens(running_zipkin):
    import requests

    url, _ = running_zipkin
    page = requests.get(f"{url}/zipkin/", timeout=10)
    assert page.status_code == 200 and "<title>Zipkin</title>" in page.text


# --- a trace through the Collector ------------------------------------------------------------------

def test_trace_arrives_whole_with_its_services(running_zipkin, sent):
    url, _ = running_zipkin
    spans = zipkin.zipkin_trace(url, sent.trace_id)
    assert zipkin.trace_summary(spans) == {"spans": 7, "services": ["customer", "driver", "frontend"]}
    assert sent.services == ["customer", "driver", "frontend"]
    assert set(sent.services) <= set(zipkin.zipkin_services(url))


def test_every_span_keeps_its_id_parent_name_and_kind(running_zipkin, sent):
    url, _ = running_zipkin
    got = {s["id"]: s for s in zipkin.zipkin_trace(url, sent.trace_id.upper())}
    assert set(got) == {span["id"] for span in sent.spans}
    for span in sent.spans:
        stored = got[span["id"]]
        assert stored["traceId"] == sent.trace_id
        assert stored.get("parentId") == span["parentId"], (span, stored)
        # Zipkin's model lower-cases names; it has no INTERNAL kind, only no kind at all.
        assert stored["name"] == span["name"].lower()
        assert zipkin.span_service(stored) == span["service"]
        expected_kind = None if span["kind"] is INTERNAL else span["kind"].name
        assert stored.get("kind") == expected_kind, (span, stored)


def test_unknown_trace_reads_as_empty(running_zipkin):
    url, _ = running_zipkin
    assert zipkin.zipkin_trace(url, "ab" * 16) == []


# --- fetching and Java, without the network ---------------------------------------------------------

@pytest.fixture
def maven(tmp_path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server standing in for Maven Central; yields (base URL, its folder)."""
    root = tmp_path / "maven"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{HOST}:{server.server_port}", root
    finally:
        server.shutdown()
        server.server_close()


def test_download_is_checked_and_atomic(maven, tmp_path):
    url, root = maven
    body = os.urandom(300_000)
    (root / "server.jar").write_bytes(body)
    (root / "server.jar.sha1").write_text(hashlib.sha1(body).hexdigest() + "\n")
    target = tmp_path / "cache" / "zipkin-server.jar"
    lines = []
    assert zipkin.download(f"{url}/server.jar", target, log=lines.append) == target
    assert target.read_bytes() == body and (target.stat().st_mode & 0o777) == 0o644
    assert lines[-1].startswith(f"fetched {target}")

    (root / "server.jar.sha1").write_text("0" * 40)   # what a damaged download looks like
    target.unlink()
    with pytest.raises(zipkin.ZipkinError, match="damaged: its SHA-1 is"):
        zipkin.download(f"{url}/server.jar", target, log=lambda _: None)
    assert list(target.parent.iterdir()) == []        # nothing half-made is left behind

    with pytest.raises(zipkin.ZipkinError, match="could not download .*404.*set ZIPKIN_JAR"):
        zipkin.download(f"{url}/missing.jar", target, log=lambda _: None)


def test_zipkin_jar_override_that_is_not_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("ZIPKIN_JAR", str(tmp_path / "nope.jar"))
    assert zipkin.find_zipkin() is None
    with pytest.raises(zipkin.ZipkinError, match=r"ZIPKIN_JAR=.*nope\.jar is not a file"):
        zipkin.ensure_zipkin(log=lambda _: None)
    with pytest.raises(zipkin.ZipkinError, match="is not a file"):
        zipkin.zipkin_process(Ports.free())


def test_missing_reason_names_the_command(monkeypatch, tmp_path):
    monkeypatch.delenv("ZIPKIN_JAR", raising=False)
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path))
    assert zipkin.find_zipkin() is None
    reason = zipkin.zipkin_missing_reason()
    assert "`tracequest backends build`" in reason and "`make backends`" in reason
    assert "Java 17+" in reason


def fake_java(folder: Path, says: str) -> Path:
    """A `java` that prints ``says`` for -version, as Java prints it: on stderr."""
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{says}' >&2\n")
    java.chmod(0o755)
    return folder


@pytest.mark.parametrize("says, message", [
    ('java version "1.8.0_392"', "is Java 8, too old"),
    ('openjdk version "11.0.21" 2023-10-17', "is Java 11, too old"),
    ("no version here", "did not say which Java"),
])
def test_java_too_old_or_unknown(monkeypatch, tmp_path, says, message):
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, says)))
    with pytest.raises(zipkin.ZipkinError, match=message) as caught:
        zipkin.java_command()
    assert "openjdk-17-jre-headless" in str(caught.value)


def test_java_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(zipkin.ZipkinError, match="Java is not installed.*needs Java 17 or newer"):
        zipkin.java_command()


def test_java_home_wins_and_new_versions_pass(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "21.0.5" 2024-10-15')))
    assert zipkin.java_command() == str(tmp_path / "bin" / "java")
