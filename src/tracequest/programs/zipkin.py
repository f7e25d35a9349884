"""Fetch, run and read the real Zipkin server: a tracing UI that needs no Docker.

The Jaeger the lab compiles from the Go module proxy has no UI assets, so a
learner without Docker would never see a real tracing UI. Zipkin's server
ships as one executable jar on Maven Central with its Lens UI inside, and it
runs on any Java 17. So the lab downloads that jar once into the per-user
cache (beside the Jaeger and Collector builds, keyed by version), checks it
against Maven Central's SHA-1, and starts it as one more backend process.

How the lab runs it
-------------------
- Bound to 127.0.0.1 only. Zipkin reads ``QUERY_PORT`` for its port, but its
  HTTP server (Armeria) binds every interface unless told otherwise; the
  Armeria port list, given whole on the command line, adds the address.
- In-memory storage, capped at :data:`MEM_MAX_SPANS` spans (oldest traces go
  first), in a 256 MB heap: plenty for a lab, small on a learner's laptop.
- Only the HTTP intake (``POST /api/v2/spans``, what the Collector's zipkin
  exporter sends to); the message-queue collectors, service discovery and
  self-tracing are switched off, so a stray ``KAFKA_*`` or ``RABBIT_*`` in the
  learner's environment cannot change what the lab does.
- The JVM's quick-start flags (C1 compiler only, serial GC): on two busy cores
  this roughly halves the time until ``/health`` answers.

Reading it
----------
Zipkin speaks its own JSON (API v2), not OTLP, so it gets one small reader
here (:func:`zipkin_trace`, :func:`zipkin_services`, :func:`trace_summary`)
rather than a second trace model: enough to compare what Zipkin holds with
what Jaeger's API v3 shows for the same trace.
"""

from __future__ import annotations

import os
from pathlib import Path

import requests

from tracequest.host.ports import HOST, Ports
from tracequest.host.procs import Process
from tracequest.programs.cache import (BUILD_COMMAND, Program, ProgramError, build_once, cache_dir,
                                       find_program)
from tracequest.programs.java import require_java
from tracequest.programs.maven import artifact_url, download_verified

#: Zipkin server release: the jar the lab fetches and the image compose/ runs.
ZIPKIN_VERSION = "3.5.1"
#: The Zipkin image compose/ runs (the same release as the jar).
ZIPKIN_IMAGE = f"openzipkin/zipkin:{ZIPKIN_VERSION}"
#: io.zipkin:zipkin-server:<version>, classifier exec: the runnable jar with Lens.
ZIPKIN_JAR_URL = artifact_url("io.zipkin", "zipkin-server", ZIPKIN_VERSION, classifier="exec")
#: Zipkin 3 is built for Java 17.
MIN_JAVA = 17
#: Spans kept in memory before the oldest traces are dropped.
MEM_MAX_SPANS = 50_000
#: JVM options: a small heap and a quick start rather than peak throughput.
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k")
#: Seconds to wait for /health: 12-15 s on two idle cores, over 35 s on busy ones.
START_TIMEOUT = 120.0

#: The variable that points the lab at a jar of one's own.
OVERRIDE = "ZIPKIN_JAR"


class ZipkinError(ProgramError):
    """Zipkin cannot be fetched or run here; the message says what to do."""


# --- the jar ------------------------------------------------------------------------

def cached_zipkin_path() -> Path:
    """Where the jar for ZIPKIN_VERSION lives once fetched (may not exist)."""
    return cache_dir() / f"zipkin-{ZIPKIN_VERSION}" / "zipkin-server.jar"


def find_zipkin() -> Path | None:
    """A Zipkin server jar, or None: ``$ZIPKIN_JAR`` first, then the cache."""
    return find_program(OVERRIDE, cached_zipkin_path(), usable=Path.is_file)


def zipkin_missing_reason() -> str:
    """One sentence for an error or a pytest skip: why Zipkin is absent and how to get it."""
    if os.environ.get("ZIPKIN_JAR"):
        return (f"ZIPKIN_JAR={os.environ['ZIPKIN_JAR']} is not a file; fix it or unset it "
                "to use the cached download.")
    return (f"the Zipkin server {ZIPKIN_VERSION} is not fetched yet: run `{BUILD_COMMAND}` "
            f"or `make backends` (downloads its 131 MB jar from Maven Central once; running "
            f"it needs Java {MIN_JAVA}+), or set ZIPKIN_JAR to an existing "
            f"zipkin-server-{ZIPKIN_VERSION}-exec.jar.")


def fetch_zipkin(log=print) -> Path:
    """Download the jar from Maven Central into the cache, checked; return its path.

    One download per version runs at a time: a caller that waited for
    another one reuses its jar.
    """
    return build_once(log, f"zipkin-{ZIPKIN_VERSION}", f"Zipkin {ZIPKIN_VERSION}",
                      cached_zipkin_path(), lambda target: download(ZIPKIN_JAR_URL, target, log),
                      made=Path.is_file)


def download(url: str, target: Path, log=print) -> Path:
    """A jar from Maven Central into ``target``, checked; failures are ZipkinErrors."""
    return download_verified(url, target, log=log, override=OVERRIDE, error=ZipkinError)


# --- Java -----------------------------------------------------------------------------

def java_command() -> str:
    """A Java new enough to run Zipkin, or a ZipkinError naming what to install."""
    return require_java("the Zipkin server", MIN_JAVA, ZipkinError)


# --- running it -------------------------------------------------------------------------

def zipkin_url(ports: Ports) -> str:
    return f"http://{HOST}:{ports.zipkin}"


def zipkin_process(ports: Ports) -> tuple[list[str], dict[str, str], str]:
    """How to run Zipkin on ``ports.zipkin``: (argv, extra environment, readiness URL).

    The environment is only what Zipkin must see; the caller adds it to its own.
    Raises ZipkinError when the jar or a fitting Java is missing.
    """
    jar = find_zipkin()
    if jar is None:
        raise ZipkinError(zipkin_missing_reason())
    port = str(ports.zipkin)
    argv = [java_command(), *JVM_OPTIONS, "-jar", str(jar),
            # Armeria's port list is replaced whole, so all three fields are given.
            f"--armeria.ports[0].ip={HOST}", f"--armeria.ports[0].port={port}",
            "--armeria.ports[0].protocols[0]=http", "--spring.main.banner-mode=off"]
    env = {
        "QUERY_PORT": port,
        "STORAGE_TYPE": "mem",
        "MEM_MAX_SPANS": str(MEM_MAX_SPANS),
        "SELF_TRACING_ENABLED": "false",
        "COLLECTOR_HTTP_ENABLED": "true",
        **{f"COLLECTOR_{kind}_ENABLED": "false"
           for kind in ("SCRIBE", "KAFKA", "RABBITMQ", "ACTIVEMQ", "PULSAR")},
        "DISCOVERY_EUREKA_ENABLED": "false",
    }
    return argv, env, f"{zipkin_url(ports)}/health"


def zipkin_program(ports: Ports) -> Process:
    """The Zipkin server as a program of a lab; a ZipkinError when the jar or a Java is missing."""
    argv, env, ready_url = zipkin_process(ports)
    return Process("zipkin", argv, ready_url, env, start_timeout=START_TIMEOUT)


PROGRAM = Program(
    name="zipkin", title=f"Zipkin {ZIPKIN_VERSION}", version=ZIPKIN_VERSION, image=ZIPKIN_IMAGE,
    origin=f"io.zipkin:zipkin-server:{ZIPKIN_VERSION}:exec from Maven Central", override=OVERRIDE,
    find=find_zipkin, missing_reason=zipkin_missing_reason,
    make=fetch_zipkin, check_runnable=java_command,
    artifact="jar", error=ZipkinError)


def ensure_zipkin(log=print) -> Path:
    """The Zipkin server jar, downloaded once if it is not there yet."""
    return PROGRAM.ensure(log=log)




# --- reading its API v2 -------------------------------------------------------------------

def zipkin_trace(base_url: str, trace_id: str, timeout: float = 5.0) -> list[dict]:
    """The spans Zipkin holds for ``trace_id`` (its v2 JSON), or [] when it has none yet."""
    answer = requests.get(f"{base_url}/api/v2/trace/{trace_id.lower()}", timeout=timeout)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return answer.json()


def zipkin_services(base_url: str, timeout: float = 5.0) -> list[str]:
    """Service names Zipkin has seen (within its lookback, a day by default)."""
    answer = requests.get(f"{base_url}/api/v2/services", timeout=timeout)
    answer.raise_for_status()
    return answer.json()


def span_service(span: dict) -> str:
    """The service that recorded a span (Zipkin's localEndpoint)."""
    return (span.get("localEndpoint") or {}).get("serviceName", "")


def trace_summary(spans: list[dict]) -> dict:
    """What a person compares across backends: span count and services (sorted)."""
    return {"spans": len(spans), "services": sorted({span_service(s) for s in spans} - {""})}
