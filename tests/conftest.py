"""Shared fixtures: an in-process embedded backend, and the lab on free ports."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tracequest.backend import start_backend
from tracequest.binaries import (
    BuildError,
    cache_dir,
    collector_missing_reason,
    ensure_collector,
    ensure_jaeger,
    jaeger_missing_reason,
    missing_programs,
)
from tracequest.client import QueryClient
from tracequest.lab import Lab, LabSettings
from tracequest.ports import Ports

# Wrong learner solutions, run by the meta-tests as a learner's files: never collected here.
collect_ignore = ["quest_cases"]

# The fixtures that build or fetch a real program, in the order the background build makes them.
PROGRAM_FIXTURES = (("jaeger_bin",), ("collector_bin", "zipkin_jar"))
BACKGROUND_BUILD = pytest.StashKey[subprocess.Popen]()


def pytest_collection_modifyitems(session, config, items):
    """On a machine without the real programs, build them while the tests that need none run.

    The build (`tracequest backends build`, the same command a learner runs)
    starts in the background, and the test files move back by what they need:
    none, then Jaeger alone (built first), then the Collector or Zipkin. A
    fixture that comes to a program still being built waits on the build's lock
    and reuses what it made. With every program cached, nothing starts and the
    order stays as it is.
    """
    missing = [] if config.option.collectonly else missing_programs()
    if not missing:   # the usual case: nothing to build, and no test files to read
        return
    waits: dict[Path, int] = {}
    for item in items:
        waits[item.path] = max(waits.get(item.path, 0), _program_rank(item))
    if not any(waits.values()):
        return
    log = cache_dir() / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []   # the running tests come first
        config.stash[BACKGROUND_BUILD] = subprocess.Popen(
            [*nice, sys.executable, "-m", "tracequest", "backends", "build"], stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    items.sort(key=lambda item: waits[item.path])   # stable: each file keeps its order and stays whole
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"building {', '.join(missing)} in the background while "
                            f"the tests that need none run; progress in {log}")


def pytest_sessionfinish(session):
    """A build still running when the tests end is stopped; its finished parts stay cached."""
    build = session.config.stash.get(BACKGROUND_BUILD, None)
    if build is not None and build.poll() is None:
        os.killpg(build.pid, signal.SIGTERM)
        build.wait(timeout=30)


def _program_rank(item) -> int:
    """0 for a test that needs no program, else the rank of the last one it needs in build order.

    A test needs a program if it asks for its fixture, or its file names the
    fixture (some tests ask for theirs by name, at run time).
    """
    asked, source = set(getattr(item, "fixturenames", ())), _source_of(item.path)
    ranks = [rank for rank, fixtures in enumerate(PROGRAM_FIXTURES, 1)
             if any(name in asked or name in source for name in fixtures)]
    return max(ranks, default=0)


@functools.cache
def _source_of(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.suffix == ".py" else ""


@pytest.fixture
def backend():
    """A fresh embedded backend on free ports, in this process."""
    with start_backend(":memory:", grpc_port=0, http_port=0, query_port=0) as running:
        yield running


@pytest.fixture
def client(backend) -> QueryClient:
    return QueryClient(backend.query_url)


def real_program(ensure, missing_reason, label: str) -> Path:
    """Build or fetch a real program through the project's scripts; fail on CI, skip elsewhere."""
    try:
        return ensure(log=lambda line: print(f"[{label}] {line}"))
    except BuildError as exc:
        reason = missing_reason()
        message = reason if str(exc) == reason else f"{reason} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def jaeger_bin() -> Path:
    """The real Jaeger binary, built once per machine."""
    return real_program(ensure_jaeger, jaeger_missing_reason, "jaeger build")


@pytest.fixture(scope="session")
def collector_bin(jaeger_bin) -> Path:
    """The lab's own Collector, built once per machine (with Jaeger: the two always run together)."""
    return real_program(ensure_collector, collector_missing_reason, "collector build")


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    """The installed Prometheus (Debian's package; .ci/run installs it); fail on CI, skip elsewhere."""
    from tracequest.prometheus import find_prometheus, prometheus_missing_reason

    found = find_prometheus()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(prometheus_missing_reason())
        pytest.skip(prometheus_missing_reason())
    return found


@pytest.fixture(scope="session")
def zipkin_jar() -> Path:
    """The Zipkin server jar, fetched once per machine, and a Java 17+ to run it."""
    from tracequest.zipkin import ZipkinError, ensure_zipkin, java_command, zipkin_missing_reason

    jar = real_program(ensure_zipkin, zipkin_missing_reason, "zipkin fetch")
    try:
        java_command()
    except ZipkinError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return jar


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium: CHROMIUM_BIN, or chromium / chromium-browser on PATH."""
    for candidate in (os.environ.get("CHROMIUM_BIN"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is missing: .ci/run should install it (apt-get install -y chromium)")
    pytest.skip("Chromium is not installed; install it with "
                "`sudo apt-get update && sudo apt-get install -y chromium` or set CHROMIUM_BIN")


def run_chromium(binary: str, tmp_path, url: str, *mode: str, window: str = "1400,900") -> str:
    """Run headless Chromium once on ``url`` in a fresh profile; its stdout (e.g. --dump-dom)."""
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
               f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={window}", *mode, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """The whole lab (embedded backend + four services) on free ports, for the session."""
    running = Lab(LabSettings(ports=Ports.free()), home=tmp_path_factory.mktemp("lab"))
    running.up(log=lambda *_: None)
    yield running
    running.down(log=lambda *_: None)


@pytest.fixture(scope="session")
def fan_out_lab(tmp_path_factory, collector_bin, zipkin_jar):
    """The fan-out lab, started once: the Collector sends to Jaeger, Zipkin and Prometheus."""
    running = Lab(LabSettings(backend="fan-out", ports=Ports.free()),
                  home=tmp_path_factory.mktemp("fan-out"))
    running.up(timeout=120, log=lambda *_: None)
    yield running
    running.down(log=lambda *_: None)


@pytest.fixture(scope="session")
def lab_client(lab) -> QueryClient:
    return QueryClient(lab.query_url)


def dispatch(lab, customer="123", **params) -> requests.Response:
    """One /dispatch request to a running lab."""
    return requests.get(f"{lab.frontend_url}/dispatch", params={"customer": customer, **params}, timeout=30)


def trace_id_of(response: requests.Response) -> str:
    """The trace id the frontend reports in its traceresponse header."""
    header = response.headers.get("traceresponse", "")
    parts = header.split("-")
    assert len(parts) == 4, f"no traceresponse header in the answer: {dict(response.headers)}"
    return parts[1]
