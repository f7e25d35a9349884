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
from tracequest.host.ports import Ports
from tracequest.lab import Lab, LabSettings
from tracequest.programs.cache import Program, ProgramError, cache_dir
from tracequest.programs.registry import PROGRAMS, made_here, missing_programs
from tracequest.traces.client import QueryClient

# Wrong learner solutions, run by the meta-tests as a learner's files: never collected here.
collect_ignore = ["quest_cases"]


def program_fixture(program: Program) -> str:
    """The name of the session fixture that hands a test ``program``: jaeger_bin, zipkin_jar, ..."""
    return f"{program.name}_{program.artifact}"


# The fixtures of the programs the background build makes, in the order it makes them.
PROGRAM_FIXTURES = tuple(program_fixture(program) for program in made_here())
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
    ranks = [rank for rank, name in enumerate(PROGRAM_FIXTURES, 1) if name in asked or name in source]
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


def real_program(program: Program) -> Path:
    """A real program, built or fetched through the project's own scripts; fail on CI, skip elsewhere.

    A program the lab cannot make (Debian's Prometheus) must be installed;
    one that is here but cannot run (Zipkin without a Java 17) counts as missing.
    """
    try:
        path = program.ensure(log=lambda line: print(f"[{program.name}] {line}"))
        if program.check_runnable is not None:
            program.check_runnable()
        return path
    except ProgramError as exc:
        reason = program.missing_reason()
        message = str(exc) if str(exc) == reason or program.find() is not None else f"{reason} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _program_fixture(program: Program, needs: tuple[str, ...]):
    def fixture(request) -> Path:
        for name in needs:   # a program that always runs beside another is made after it
            request.getfixturevalue(name)
        return real_program(program)
    fixture.__doc__ = f"{program.title}, found or made once per machine ({program.origin})."
    return pytest.fixture(scope="session", name=program_fixture(program))(fixture)


# One session fixture per program of the registry: jaeger_bin, collector_bin, zipkin_jar, prometheus_bin.
# The lab's Collector always runs in front of Jaeger, so its fixture makes Jaeger first.
for _program in PROGRAMS:
    globals()[program_fixture(_program)] = _program_fixture(
        _program, ("jaeger_bin",) if _program.name == "collector" else ())


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
