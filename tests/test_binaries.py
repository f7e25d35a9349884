"""tracequest.programs finds, builds and reuses the real Jaeger and the lab's Collector."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tracequest.programs import collector, golang, jaeger
from tracequest.programs.cache import BUILD_COMMAND
from tracequest.programs.collector import COLLECTOR_COMPONENTS, COLLECTOR_VERSION, cached_collector_path, collector_manifest
from tracequest.programs.jaeger import JAEGER_COLLECTOR_VERSION, JAEGER_VERSION, build_jaeger, cached_jaeger_path, ensure_jaeger, find_jaeger, jaeger_missing_reason, JaegerBuildError
from tracequest.programs.registry import missing_programs, status

SRC = Path(__file__).resolve().parents[1] / "src"


def run_module(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m tracequest.programs ARGS` in a child, with src/ importable."""
    paths = [str(SRC), os.environ.get("PYTHONPATH")]
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    return subprocess.run([sys.executable, "-m", "tracequest.programs", *args],
                          env=env, capture_output=True, text=True, timeout=60)


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_go(directory: Path, goversion: str) -> Path:
    """A `go` that reports `goversion` and fails every real command."""
    directory.mkdir(parents=True, exist_ok=True)
    write_executable(directory / "go", (
        "#!/bin/sh\n"
        f'if [ "$1" = env ] && [ "$2" = GOVERSION ]; then echo {goversion}; exit 0; fi\n'
        'echo "fake go: refusing $*" >&2\nexit 1\n'))
    return directory


# ------------------------------------------------------------ locating (no Go)

def test_cache_path_is_keyed_by_version_and_outside_the_repo(monkeypatch, tmp_path):
    monkeypatch.delenv("TRACEQUEST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cached_jaeger_path() == tmp_path / "xdg" / "tracequest" / f"jaeger-{JAEGER_VERSION}" / "jaeger"
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "tq"))
    assert cached_jaeger_path() == tmp_path / "tq" / f"jaeger-{JAEGER_VERSION}" / "jaeger"
    monkeypatch.delenv("TRACEQUEST_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cached_jaeger_path() == tmp_path / "home" / ".cache" / "tracequest" / f"jaeger-{JAEGER_VERSION}" / "jaeger"


def test_jaeger_bin_wins_over_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    cached = cached_jaeger_path()
    cached.parent.mkdir(parents=True)
    write_executable(cached, "#!/bin/sh\n")
    monkeypatch.delenv("JAEGER_BIN", raising=False)
    assert find_jaeger() == cached
    mine = write_executable(tmp_path / "my-jaeger", "#!/bin/sh\n")
    monkeypatch.setenv("JAEGER_BIN", str(mine))
    assert find_jaeger() == mine


def test_a_bad_jaeger_bin_is_reported_not_silently_replaced(monkeypatch, tmp_path):
    monkeypatch.setenv("JAEGER_BIN", str(tmp_path / "nope"))
    assert find_jaeger() is None
    assert "JAEGER_BIN" in jaeger_missing_reason()
    with pytest.raises(JaegerBuildError, match="JAEGER_BIN"):
        ensure_jaeger(log=lambda line: None)


def test_missing_reason_says_how_to_enable(monkeypatch):
    monkeypatch.delenv("JAEGER_BIN", raising=False)
    reason = jaeger_missing_reason()
    assert BUILD_COMMAND in reason and "make backends" in reason and "JAEGER_BIN" in reason


# ------------------------------------------------------------- status (no Go)

def test_status_names_each_program_its_version_and_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JAEGER_BIN", raising=False)
    monkeypatch.delenv("COLLECTOR_BIN", raising=False)
    entries = status()
    assert set(entries) == {"jaeger", "collector", "zipkin"}
    assert entries["jaeger"]["version"] == JAEGER_VERSION
    assert entries["collector"]["version"] == COLLECTOR_VERSION
    for name, entry in entries.items():
        assert entry["name"] == name
        assert entry["path"] is None
        assert entry["build"] == BUILD_COMMAND == "tracequest backends build"
        assert entry["image"].endswith(":" + entry["version"])
    json.dumps(entries)   # plain data, so `backends status --json` can print it


def test_status_shows_the_cached_binary_once_built(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JAEGER_BIN", raising=False)
    monkeypatch.delenv("COLLECTOR_BIN", raising=False)
    cached = cached_jaeger_path()
    cached.parent.mkdir(parents=True)
    write_executable(cached, "#!/bin/sh\n")
    entries = status()
    assert entries["jaeger"]["path"] == str(cached)
    assert entries["collector"]["path"] is None     # a program of its own, not built yet
    collector = cached_collector_path()
    collector.parent.mkdir(parents=True)
    write_executable(collector, "#!/bin/sh\n")
    assert status()["collector"]["path"] == str(collector)


def test_collector_manifest_pins_every_component_to_one_release(tmp_path):
    manifest = collector_manifest(tmp_path / "dist")
    assert manifest["dist"]["version"] == COLLECTOR_VERSION
    assert manifest["dist"]["output_path"] == str(tmp_path / "dist")
    listed = [entry["gomod"] for kind in COLLECTOR_COMPONENTS for entry in manifest[kind]]
    assert len(listed) == sum(len(modules) for modules in COLLECTOR_COMPONENTS.values()) == 16
    assert {gomod.split()[1] for gomod in listed} == {f"v{COLLECTOR_VERSION}"}


def test_module_status_says_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JAEGER_BIN", "COLLECTOR_BIN")}
    env["TRACEQUEST_CACHE"] = str(tmp_path / "cache")
    proc = run_module("status", env=env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["jaeger", "collector", "zipkin"]
    assert all(f"not built (run `{BUILD_COMMAND}`)" in line for line in lines), lines
    assert JAEGER_VERSION in lines[0] and COLLECTOR_VERSION in lines[1]


def test_module_refuses_an_unknown_command():
    proc = run_module("install", env=dict(os.environ))
    assert proc.returncode == 2
    assert "build|path" in proc.stderr and "status" in proc.stderr
    proc = run_module("path", "elasticsearch", env=dict(os.environ))   # not a program of the lab
    assert proc.returncode == 2


# ------------------------------------------------------- building (fake Go)

def test_no_go_gives_an_actionable_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("GOROOT", raising=False)
    monkeypatch.setattr(golang, "GO_FALLBACKS", ())
    with pytest.raises(JaegerBuildError, match="Go is not installed.*JAEGER_BIN"):
        build_jaeger(log=lambda line: None)


def test_old_go_gives_an_actionable_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(fake_go(tmp_path / "bin", "go1.20.3")))
    with pytest.raises(JaegerBuildError, match="too old.*Upgrade Go"):
        build_jaeger(log=lambda line: None)


def test_a_failed_build_leaves_no_binary_and_no_scraps(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(fake_go(tmp_path / "bin", "go1.99.0")) + os.pathsep + "/usr/bin:/bin")
    with pytest.raises(JaegerBuildError, match="fake go: refusing"):
        build_jaeger(log=lambda line: None)
    assert not cached_jaeger_path().exists()
    assert list(cached_jaeger_path().parent.iterdir()) == []


def test_missing_programs_names_what_a_build_would_still_make(monkeypatch, tmp_path):
    from tracequest.programs.zipkin import ZIPKIN_VERSION, cached_zipkin_path

    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    for override in ("JAEGER_BIN", "COLLECTOR_BIN", "ZIPKIN_JAR"):
        monkeypatch.delenv(override, raising=False)
    assert missing_programs() == [f"Jaeger {JAEGER_VERSION}", f"the Collector {COLLECTOR_VERSION}",
                                  f"Zipkin {ZIPKIN_VERSION}"]
    for cached in (cached_jaeger_path(), cached_zipkin_path()):
        cached.parent.mkdir(parents=True)
        write_executable(cached, "#!/bin/sh\n")
    assert missing_programs() == [f"the Collector {COLLECTOR_VERSION}"]


def test_a_second_build_waits_for_the_first_and_reuses_its_binary(monkeypatch, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    monkeypatch.setenv("TRACEQUEST_CACHE", str(tmp_path / "cache"))
    # This fake Go refuses to build: the second caller must not compile at all.
    monkeypatch.setenv("PATH", str(fake_go(tmp_path / "bin", "go1.99.0")) + os.pathsep + "/usr/bin:/bin")
    lock = tmp_path / "cache" / f".jaeger-{JAEGER_VERSION}.lock"
    lock.parent.mkdir(parents=True)
    lines, result = [], {}
    with open(lock, "w") as first_build:
        fcntl.flock(first_build, fcntl.LOCK_EX)
        second = threading.Thread(target=lambda: result.update(path=build_jaeger(log=lines.append)))
        second.start()
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lines and "waiting" in lines[0], lines
        assert second.is_alive()
        cached_jaeger_path().parent.mkdir(parents=True)
        write_executable(cached_jaeger_path(), "#!/bin/sh\n")   # the first build's result
    second.join(10)
    assert result.get("path") == cached_jaeger_path(), lines


# ----------------------------------------------------------- the real binary

def test_ensure_reuses_the_cached_binary_without_rebuilding(jaeger_bin):
    assert find_jaeger() == jaeger_bin
    before = jaeger_bin.stat().st_mtime_ns
    lines = []
    started = time.monotonic()
    again = ensure_jaeger(log=lines.append)
    assert again == jaeger_bin
    assert lines == [], f"ensure_jaeger rebuilt: {lines}"
    assert jaeger_bin.stat().st_mtime_ns == before
    assert time.monotonic() - started < 1.0


def test_binary_reports_its_version(jaeger_bin):
    proc = subprocess.run([str(jaeger_bin), "version"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert info["gitVersion"] == f"v{JAEGER_VERSION}", info


def test_binary_records_the_pinned_module_version(jaeger_bin):
    if os.environ.get("JAEGER_BIN"):
        pytest.skip("JAEGER_BIN points at a binary this project did not build")
    proc = subprocess.run(["go", "version", "-m", str(jaeger_bin)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"`go version -m` unavailable: {proc.stderr.strip()}")
    assert f"{jaeger.JAEGER_MODULE}\t{jaeger.JAEGER_MODULE_VERSION}" in proc.stdout


#: What Jaeger's own pipeline (compose/jaeger/*.yaml) needs from the Jaeger binary.
JAEGER_COMPONENTS = {
    "receivers": {"otlp"},
    "processors": {"batch"},
    "exporters": {"jaeger_storage_exporter"},
    "extensions": {"jaeger_query", "jaeger_storage"},
}
#: What the collector pipelines and quests need from the lab's Collector.
COLLECTOR_NEEDS = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter", "tail_sampling", "attributes", "filter",
                   "transform", "redaction"},
    # 0.161 lists the OTLP and load-balancing exporters by their new names; the old
    # ones (otlp, otlphttp, loadbalancing) still load, as test_compose checks.
    "exporters": {"debug", "otlp_grpc", "otlp_http", "zipkin", "prometheus", "load_balancing"},
    "connectors": {"span_metrics"},   # the old name, spanmetrics, still loads too
    "extensions": {"health_check"},
}


@pytest.mark.parametrize("program, needs", [("jaeger_bin", JAEGER_COMPONENTS),
                                            ("collector_bin", COLLECTOR_NEEDS)])
def test_binary_carries_the_components_the_lab_needs(request, program, needs):
    binary = request.getfixturevalue(program)
    proc = subprocess.run([str(binary), "components"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    listed = yaml.safe_load(proc.stdout)
    for kind, needed in needs.items():
        have = {c["name"] for c in listed.get(kind) or []}
        assert needed <= have, f"{kind}: missing {sorted(needed - have)}"


def linked_modules(binary: Path) -> dict[str, str]:
    """Module -> version of every module linked into a Go binary (`go version -m`)."""
    proc = subprocess.run(["go", "version", "-m", str(binary)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"`go version -m` unavailable: {proc.stderr.strip()}")
    # "dep <module> <version> <hash>" lines, one per linked module
    return {parts[1]: parts[2] for parts in map(str.split, proc.stdout.splitlines())
            if parts[:1] == ["dep"]}


def test_jaeger_links_the_collector_release_its_go_mod_names(jaeger_bin):
    if os.environ.get("JAEGER_BIN"):
        pytest.skip("JAEGER_BIN points at a binary this project did not build")
    contrib = {m: v for m, v in linked_modules(jaeger_bin).items()
               if m.startswith(collector.COLLECTOR_CONTRIB_MODULE + "/")}
    assert any(m.endswith("/tailsamplingprocessor") for m in contrib), sorted(contrib)
    wrong = {m: v for m, v in contrib.items() if v != f"v{JAEGER_COLLECTOR_VERSION}"}
    assert not wrong, f"contrib components not at v{JAEGER_COLLECTOR_VERSION}: {wrong}"


def test_collector_links_every_component_at_the_compose_image_release(collector_bin):
    """COLLECTOR_VERSION is true: each component the build names is linked at that release."""
    if os.environ.get("COLLECTOR_BIN"):
        pytest.skip("COLLECTOR_BIN points at a binary this project did not build")
    linked = linked_modules(collector_bin)
    wanted = [m for modules in COLLECTOR_COMPONENTS.values() for m in modules]
    wrong = {m: linked.get(m) for m in wanted if linked.get(m) != f"v{COLLECTOR_VERSION}"}
    assert not wrong, f"components not linked at v{COLLECTOR_VERSION}: {wrong}"


def test_collector_build_is_reused_without_rebuilding(collector_bin):
    if os.environ.get("COLLECTOR_BIN"):
        pytest.skip("COLLECTOR_BIN points at a binary this project did not build")
    before = collector_bin.stat().st_mtime_ns
    lines = []
    assert collector.ensure_collector(log=lines.append) == collector_bin
    assert lines == [] and collector_bin.stat().st_mtime_ns == before


def test_module_entry_point_prints_the_path(jaeger_bin):
    env = {**os.environ, "JAEGER_BIN": str(jaeger_bin)}
    for command in ("path", "build"):
        proc = run_module(command, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(jaeger_bin)
    proc = run_module("status", env=env)
    assert proc.stdout.count(str(jaeger_bin)) == 1, proc.stdout
    env["JAEGER_BIN"] = str(jaeger_bin) + ".missing"
    proc = run_module("path", env=env)
    assert proc.returncode == 1 and "JAEGER_BIN" in proc.stderr


def test_module_entry_point_names_the_collector(collector_bin):
    env = {**os.environ, "COLLECTOR_BIN": str(collector_bin)}
    proc = run_module("path", "collector", env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == str(collector_bin), proc.stderr
    env["COLLECTOR_BIN"] = str(collector_bin) + ".missing"
    proc = run_module("path", "collector", env=env)
    assert proc.returncode == 1 and "COLLECTOR_BIN" in proc.stderr
