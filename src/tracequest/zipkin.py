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

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from .binaries import BUILD_COMMAND, BuildError, build_lock, cache_dir, ensure_program
from .ports import HOST, Ports

#: Zipkin server release: the jar the lab fetches and the image compose/ runs.
ZIPKIN_VERSION = "3.5.1"
#: The Zipkin image compose/ runs (the same release as the jar).
ZIPKIN_IMAGE = f"openzipkin/zipkin:{ZIPKIN_VERSION}"
#: io.zipkin:zipkin-server:<version>, classifier exec: the runnable jar with Lens.
ZIPKIN_JAR_URL = ("https://repo1.maven.org/maven2/io/zipkin/zipkin-server/"
                  f"{ZIPKIN_VERSION}/zipkin-server-{ZIPKIN_VERSION}-exec.jar")
#: Zipkin 3 is built for Java 17.
MIN_JAVA = 17
#: Spans kept in memory before the oldest traces are dropped.
MEM_MAX_SPANS = 50_000
#: JVM options: a small heap and a quick start rather than peak throughput.
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k")
#: Seconds to wait for /health: 12-15 s on two idle cores, over 35 s on busy ones.
START_TIMEOUT = 120.0

JAVA_INSTALL_HINT = ("install a Java 17 or newer runtime (Debian/Ubuntu: "
                     "`sudo apt-get install -y openjdk-17-jre-headless`; macOS: "
                     "`brew install openjdk@17`; others: https://adoptium.net), "
                     "or point JAVA_HOME at one")


class ZipkinError(BuildError):
    """Zipkin cannot be fetched or run here; the message says what to do."""


# --- the jar ------------------------------------------------------------------------

def cached_zipkin_path() -> Path:
    """Where the jar for ZIPKIN_VERSION lives once fetched (may not exist)."""
    return cache_dir() / f"zipkin-{ZIPKIN_VERSION}" / "zipkin-server.jar"


def find_zipkin() -> Path | None:
    """A Zipkin server jar, or None: ``$ZIPKIN_JAR`` first, then the cache."""
    override = os.environ.get("ZIPKIN_JAR")
    path = Path(override).expanduser() if override else cached_zipkin_path()
    return path if path.is_file() else None


def zipkin_missing_reason() -> str:
    """One sentence for an error or a pytest skip: why Zipkin is absent and how to get it."""
    if os.environ.get("ZIPKIN_JAR"):
        return (f"ZIPKIN_JAR={os.environ['ZIPKIN_JAR']} is not a file; fix it or unset it "
                "to use the cached download.")
    return (f"the Zipkin server {ZIPKIN_VERSION} is not fetched yet: run `{BUILD_COMMAND}` "
            f"or `make backends` (downloads its 131 MB jar from Maven Central once; running "
            f"it needs Java {MIN_JAVA}+), or set ZIPKIN_JAR to an existing "
            f"zipkin-server-{ZIPKIN_VERSION}-exec.jar.")


def ensure_zipkin(log=print) -> Path:
    """The Zipkin server jar, downloaded once if it is not there yet."""
    return ensure_program(find_zipkin, "ZIPKIN_JAR", lambda: ZipkinError(zipkin_missing_reason()),
                          fetch_zipkin, log)


def fetch_zipkin(log=print) -> Path:
    """Download the jar from Maven Central into the cache, checked; return its path.

    One download per version runs at a time: a caller that waited for
    another one reuses its jar.
    """
    target = cached_zipkin_path()
    with build_lock(log, f"zipkin-{ZIPKIN_VERSION}", f"Zipkin {ZIPKIN_VERSION}") as waited:
        if waited and target.is_file():
            log(f"reusing {target}, fetched meanwhile")
            return target
        download_verified(ZIPKIN_JAR_URL, target, log=log)
    return target


def download_verified(url: str, target: Path, log=print, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``target``, checked against the ``.sha1`` Maven publishes beside it.

    The bytes go to a temporary file beside ``target`` and are renamed into
    place only once their SHA-1 matches, so an interrupted or corrupted
    download never leaves a jar that Java would fail on later.
    """
    started = time.monotonic()
    try:
        answer = requests.get(url + ".sha1", timeout=timeout)
        answer.raise_for_status()
        expected = answer.text.split()[0].lower() if answer.text.strip() else ""
        target.parent.mkdir(parents=True, exist_ok=True)
        log(f"downloading {url} into {target} ...")
        digest = hashlib.sha1()
        with requests.get(url, stream=True, timeout=timeout) as body:
            body.raise_for_status()
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".download-",
                                             delete=False) as part:
                total = int(body.headers.get("Content-Length") or 0)
                done, shown = 0, 0
                try:
                    for chunk in body.iter_content(chunk_size=1 << 20):
                        part.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if total and done * 4 // total > shown and done < total:
                            shown = done * 4 // total   # a line at each quarter
                            log(f"  {done / 1e6:.0f} of {total / 1e6:.0f} MB")
                except BaseException:
                    part.close()
                    os.unlink(part.name)
                    raise
    except requests.RequestException as exc:
        raise ZipkinError(f"could not download {url}: {exc}. Check the network (or the "
                          "HTTPS_PROXY setting), or download the jar yourself and set "
                          "ZIPKIN_JAR to it.") from None
    if digest.hexdigest() != expected:
        os.unlink(part.name)
        raise ZipkinError(f"the download of {url} is damaged: its SHA-1 is "
                          f"{digest.hexdigest()}, Maven Central says {expected or 'nothing'}. "
                          "Run the command again.")
    os.chmod(part.name, 0o644)   # a temporary file starts private
    os.replace(part.name, target)
    size_mb = target.stat().st_size / 1e6
    log(f"fetched {target} ({size_mb:.0f} MB) in {time.monotonic() - started:.1f}s")
    return target


# --- Java -----------------------------------------------------------------------------

def find_java() -> str | None:
    """The java launcher: ``$JAVA_HOME/bin/java`` when set, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def java_major(java: str) -> int | None:
    """The major version ``java -version`` reports (8 for "1.8.0_392"), or None."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_command() -> str:
    """A Java new enough to run Zipkin, or a ZipkinError naming what to install."""
    java = find_java()
    if java is None:
        raise ZipkinError(f"Java is not installed, and the Zipkin server needs Java "
                          f"{MIN_JAVA} or newer: {JAVA_INSTALL_HINT}.")
    major = java_major(java)
    if major is None:
        raise ZipkinError(f"`{java} -version` did not say which Java it is; the Zipkin "
                          f"server needs Java {MIN_JAVA} or newer: {JAVA_INSTALL_HINT}.")
    if major < MIN_JAVA:
        raise ZipkinError(f"{java} is Java {major}, too old for the Zipkin server, which "
                          f"needs Java {MIN_JAVA} or newer: {JAVA_INSTALL_HINT}.")
    return java


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


def status_entry() -> dict:
    """Zipkin's line in ``tracequest backends status`` (the shape of binaries.status())."""
    jar = find_zipkin()
    if jar is None:
        where = zipkin_missing_reason()
    else:
        where = "from ZIPKIN_JAR" if os.environ.get("ZIPKIN_JAR") else "cached"
        try:
            java_command()
        except ZipkinError as exc:
            where += f"; but {exc}"
    return {"name": "zipkin", "version": ZIPKIN_VERSION, "image": ZIPKIN_IMAGE,
            "path": str(jar) if jar else None, "build": BUILD_COMMAND,
            "note": f"io.zipkin:zipkin-server:{ZIPKIN_VERSION}:exec from Maven Central, {where}"}


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
