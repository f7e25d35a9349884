"""Build and locate the real programs: Jaeger v2 and the lab's own Collector.

The lab's ``jaeger`` backend runs the genuine Jaeger v2 program; the
``collector`` and ``fan-out`` backends put the lab's own OpenTelemetry
Collector in front of it, loading the pipelines in ``compose/collector/``.
No prebuilt download is possible here, so both are compiled from the Go
module proxy and kept in a per-user cache keyed by version. A fresh clone on
the same machine reuses those binaries instead of compiling again.

Why a Collector of our own
--------------------------
Jaeger v2 is itself a collector distribution, but it carries no Zipkin or
load-balancing exporter and no transform or redaction processor. The
Collector Builder (ocb) compiles exactly :data:`COLLECTOR_COMPONENTS`, every
one at :data:`COLLECTOR_VERSION`, the release the compose files' contrib
image runs, so a config that loads here loads in Docker.

What Docker runs is what the tests run
--------------------------------------
One constant per upstream image: :data:`JAEGER_IMAGE` and
:data:`COLLECTOR_IMAGE` are the only images ``compose/*.yaml`` may name for
Jaeger and the Collector (``tests/test_compose.py`` fails on any other tag).
The Jaeger image is the release the native build compiles; the contrib image
is the release of the lab's Collector build.

Which Jaeger
------------
Jaeger v2's Go module path has no ``/v2`` suffix, so its ``v2.x`` tags are not
valid Go versions; every v2 release is reachable only through the module's
``v1.x`` tags or a pseudo-version. Until the end of 2025 each release carried
both tags, and ``v1.76.0`` is the last of them: it *is* Jaeger **v2.13.0**,
the newest release the module proxy this project reaches can serve (later
ones, such as v2.20.0 at commit ``798e4b0fcf22``, exist only as
pseudo-versions, and that proxy refuses to resolve a bare commit). To move:
set ``JAEGER_VERSION`` and ``JAEGER_MODULE_VERSION`` (the full pseudo-version
``v1.76.1-0.<UTC commit time>-<commit>``), then ``COLLECTOR_VERSION`` to the
contrib release the new go.mod requires; the compose files follow the test.

Why a wrapper module
--------------------
``go install pkg@version`` refuses modules whose go.mod has ``replace``
directives, and Jaeger v1.76.0 has one. So we build inside a throwaway module
that copies Jaeger's go.mod and go.sum (keeping Jaeger's own pinned
dependency hashes) and requires Jaeger itself.

Environment read by the configs in ``compose/`` (defaults suit a container)
----------------------------------------------------------------------------
``compose/jaeger/config.yaml``: ``TQ_JAEGER_HOST`` (0.0.0.0),
``TQ_JAEGER_OTLP_GRPC_PORT`` (4317), ``TQ_JAEGER_OTLP_HTTP_PORT`` (4318),
``TQ_JAEGER_QUERY_HTTP_PORT`` (16686), ``TQ_JAEGER_QUERY_GRPC_PORT`` (16685),
``TQ_JAEGER_METRICS_PORT`` (8888).

``compose/collector/*.yaml``: ``TQ_COLLECTOR_HOST`` (0.0.0.0),
``TQ_COLLECTOR_OTLP_GRPC_PORT`` (4317), ``TQ_COLLECTOR_OTLP_HTTP_PORT`` (4318),
``TQ_COLLECTOR_METRICS_PORT`` (8888),
``TQ_JAEGER_OTLP_ENDPOINT`` (jaeger:4317, host:port of Jaeger's OTLP/gRPC);
``tail-sampling.yaml`` also ``TQ_TAIL_DECISION_WAIT`` (5s).

:func:`jaeger_env` and :func:`collector_env` fill these in from a
:class:`~tracequest.ports.Ports`; :data:`NATIVE_JAEGER_ENV` and
:data:`NATIVE_COLLECTOR_ENV` are the lab's default layout (``Ports()``):
collector on the lab's OTLP ports, Jaeger's OTLP moved to its own pair.
Tests use ``Ports.free()``. The configs have no health-check extension (its
name differs between the two programs): Jaeger is ready when
``/api/v3/services`` answers, a collector when its OTLP/HTTP port answers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .ports import HOST, Ports

try:
    import fcntl
except ImportError:   # Windows
    fcntl = None

#: Jaeger release the cached binary is (see "Which Jaeger" above).
JAEGER_VERSION = "2.13.0"
#: Go module version of github.com/jaegertracing/jaeger that is that release.
JAEGER_MODULE_VERSION = "v1.76.0"
#: The Jaeger image compose/ runs: the release the native build compiles.
JAEGER_IMAGE = f"jaegertracing/jaeger:{JAEGER_VERSION}"

#: Jaeger v1.76.0's go.mod requires collector-contrib v0.140.1 (core v0.140.0):
#: the collector components linked into the Jaeger binary itself.
JAEGER_COLLECTOR_VERSION = "0.140.1"

#: The lab's own Collector: built with the Collector Builder from these components,
#: all at this release (core and contrib resolve together at it here).
COLLECTOR_VERSION = "0.161.0"
#: The Collector image compose/ runs: the contrib distribution of the same release.
COLLECTOR_IMAGE = f"otel/opentelemetry-collector-contrib:{COLLECTOR_VERSION}"

JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_PACKAGE = JAEGER_MODULE + "/cmd/jaeger"
#: Go module path prefix of the contrib components, as `go version -m` lists them.
COLLECTOR_CONTRIB_MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib"
#: Oldest Go that builds JAEGER_MODULE_VERSION (its go.mod says 1.24.6).
MIN_GO = (1, 24)

#: How a learner builds what is missing (shown by errors and by status()).
BUILD_COMMAND = "tracequest backends build"

_CORE = "go.opentelemetry.io/collector"
#: What the lab's Collector is made of, by kind: every module at COLLECTOR_VERSION.
COLLECTOR_COMPONENTS: dict[str, tuple[str, ...]] = {
    "receivers": (f"{_CORE}/receiver/otlpreceiver",),
    "processors": (
        f"{_CORE}/processor/batchprocessor",
        f"{_CORE}/processor/memorylimiterprocessor",
        f"{COLLECTOR_CONTRIB_MODULE}/processor/tailsamplingprocessor",
        f"{COLLECTOR_CONTRIB_MODULE}/processor/attributesprocessor",
        f"{COLLECTOR_CONTRIB_MODULE}/processor/filterprocessor",
        f"{COLLECTOR_CONTRIB_MODULE}/processor/transformprocessor",
        f"{COLLECTOR_CONTRIB_MODULE}/processor/redactionprocessor",
    ),
    "exporters": (
        f"{_CORE}/exporter/otlpexporter",
        f"{_CORE}/exporter/otlphttpexporter",
        f"{_CORE}/exporter/debugexporter",
        f"{COLLECTOR_CONTRIB_MODULE}/exporter/zipkinexporter",
        f"{COLLECTOR_CONTRIB_MODULE}/exporter/prometheusexporter",
        f"{COLLECTOR_CONTRIB_MODULE}/exporter/loadbalancingexporter",
    ),
    "connectors": (f"{COLLECTOR_CONTRIB_MODULE}/connector/spanmetricsconnector",),
    "extensions": (f"{COLLECTOR_CONTRIB_MODULE}/extension/healthcheckextension",),
}
#: Dependencies pinned below what the components ask for, because the module proxy
#: here does not serve the asked version (loadbalancing's AWS Cloud Map resolver
#: wants servicediscovery v1.48.0; v1.43.0 is the newest served, with the same API).
COLLECTOR_REPLACES: dict[str, str] = {
    "github.com/aws/aws-sdk-go-v2/service/servicediscovery": "v1.43.0",
}
#: The builder (ocb) of the same release.
COLLECTOR_BUILDER_PACKAGE = f"{_CORE}/cmd/builder"
COLLECTOR_BINARY_NAME = "otelcol-tracequest"


def jaeger_env(ports: Ports, behind_collector: bool = True) -> dict[str, str]:
    """Environment that runs compose/jaeger/config.yaml natively on ``ports``.

    Behind a collector Jaeger's OTLP listeners move to the ``jaeger_otlp_*``
    ports, because the collector takes the lab's OTLP ports.
    """
    grpc, http = ((ports.jaeger_otlp_grpc, ports.jaeger_otlp_http) if behind_collector
                  else (ports.otlp_grpc, ports.otlp_http))
    return {
        "TQ_JAEGER_HOST": HOST,
        "TQ_JAEGER_OTLP_GRPC_PORT": str(grpc),
        "TQ_JAEGER_OTLP_HTTP_PORT": str(http),
        "TQ_JAEGER_QUERY_HTTP_PORT": str(ports.query),
        "TQ_JAEGER_QUERY_GRPC_PORT": str(ports.jaeger_query_grpc),
        "TQ_JAEGER_METRICS_PORT": str(ports.jaeger_metrics),
        # Where the Monitor (SPM) reads span metrics; Jaeger starts without it.
        "TQ_PROMETHEUS_URL": f"http://{HOST}:{ports.prometheus}",
    }


def collector_env(ports: Ports) -> dict[str, str]:
    """Environment that runs a compose/collector/ pipeline natively, in front of jaeger_env."""
    return {
        "TQ_COLLECTOR_HOST": HOST,
        "TQ_COLLECTOR_OTLP_GRPC_PORT": str(ports.otlp_grpc),
        "TQ_COLLECTOR_OTLP_HTTP_PORT": str(ports.otlp_http),
        "TQ_COLLECTOR_METRICS_PORT": str(ports.collector_metrics),
        "TQ_COLLECTOR_HEALTH_PORT": str(ports.collector_health),
        "TQ_JAEGER_OTLP_ENDPOINT": f"{HOST}:{ports.jaeger_otlp_grpc}",
        "TQ_ZIPKIN_ENDPOINT": f"http://{HOST}:{ports.zipkin}/api/v2/spans",
        "TQ_SPANMETRICS_PORT": str(ports.spanmetrics),
    }


#: Native Jaeger behind a native collector, on the lab's default ports.
NATIVE_JAEGER_ENV = jaeger_env(Ports())
#: A native collector pipeline in front of NATIVE_JAEGER_ENV.
NATIVE_COLLECTOR_ENV = collector_env(Ports())

_VERSION_PKG = JAEGER_MODULE + "/internal/version"


class BuildError(RuntimeError):
    """A real program could not be built or fetched; the message says what to do."""


class JaegerBuildError(BuildError):
    """The Jaeger binary could not be built."""


class CollectorBuildError(BuildError):
    """The lab's Collector could not be built."""


def cache_dir() -> Path:
    """Root of built binaries: outside the repo, so every clone shares them."""
    root = os.environ.get("TRACEQUEST_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "tracequest"


def cached_jaeger_path() -> Path:
    """Where the binary for JAEGER_VERSION lives once built (may not exist)."""
    return cache_dir() / f"jaeger-{JAEGER_VERSION}" / "jaeger"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_jaeger() -> Path | None:
    """A usable Jaeger binary, or None: ``$JAEGER_BIN`` first, then the cache."""
    return find_program("JAEGER_BIN", cached_jaeger_path())


def find_program(override: str, cached: Path) -> Path | None:
    """The file an override variable names, else the cached one; None unless executable."""
    path = Path(os.environ[override]).expanduser() if os.environ.get(override) else cached
    return path if _is_executable(path) else None


def build_once(log, key: str, what: str, target: Path, make) -> Path:
    """Run ``make(target)`` under the build lock of ``key``, unless a build that held it made target.

    One build per version runs at a time: a caller that had to wait for
    another build reuses its result instead of building again.
    """
    with build_lock(log, key, what) as waited:
        if waited and _is_executable(target):
            log(f"reusing {target}, built meanwhile")
            return target
        return make(target)


#: Where Go lands when installed from go.dev but not (yet) on PATH.
_GO_FALLBACKS = ("/usr/local/go/bin/go",)


def _find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    goroot = os.environ.get("GOROOT")
    candidates = ([os.path.join(goroot, "bin", "go")] if goroot else []) + list(_GO_FALLBACKS)
    return next((c for c in candidates if _is_executable(Path(c))), None)


def _check_go(what: str = f"Jaeger {JAEGER_VERSION}", override: str = "JAEGER_BIN",
              error: type[BuildError] = JaegerBuildError) -> str:
    """Path of a Go toolchain new enough, or an error saying what to do."""
    go = _find_go()
    if go is None:
        raise error(
            f"Go is not installed, so {what} cannot be built. Install Go "
            f"{MIN_GO[0]}.{MIN_GO[1]} or newer (https://go.dev/dl/), or set "
            f"{override} to an existing binary.")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True,
                         text=True).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match:
        raise error(f"cannot tell the Go version from {out!r} ({go}).")
    found = (int(match.group(1)), int(match.group(2)))
    if found < MIN_GO:
        raise error(
            f"Go {found[0]}.{found[1]} is too old to build {what}; "
            f"it needs Go {MIN_GO[0]}.{MIN_GO[1]} or newer. Upgrade Go, or set "
            f"{override} to an existing binary.")
    return go


def _go(go: str, args: list[str], cwd: Path, env: dict[str, str],
        error: type[BuildError] = JaegerBuildError) -> str:
    proc = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise error(
            f"`go {' '.join(args)}` failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()[-4000:]}")
    return proc.stdout


def _go_env() -> dict[str, str]:
    """The environment of every Go command here: static, local toolchain, no user flags."""
    # GOFLAGS is cleared so a user's -mod=vendor or similar cannot leak in.
    return dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="", GOWORK="off")


@contextmanager
def build_lock(log, key: str, what: str) -> Iterator[bool]:
    """Hold the build lock of ``key``; yields True if another build held it first.

    Two test runs or two terminals asking for one program at once would
    otherwise build or download it twice side by side, doubling a long build
    on a small machine.
    """
    if fcntl is None:   # Windows: no lock; the atomic rename keeps overlapping builds safe
        yield False
        return
    lock = cache_dir() / f".{key}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            log(f"another build of {what} is running; waiting for it ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = True
        yield waited   # the lock goes with the file handle


def build_jaeger(log=print) -> Path:
    """Compile Jaeger from the Go module proxy into the cache; return its path.

    One build per version runs at a time: a caller that had to wait for
    another build reuses its binary. The binary is linked under a temporary
    name beside its final place and renamed into it, so an interrupted build
    never leaves a broken binary.
    """
    go = _check_go()
    return build_once(log, f"jaeger-{JAEGER_VERSION}", f"Jaeger {JAEGER_VERSION}",
                      cached_jaeger_path(), lambda target: _compile(go, target, log))


def _compile(go: str, target: Path, log) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building Jaeger {JAEGER_VERSION} ({JAEGER_MODULE}@{JAEGER_MODULE_VERSION}) "
        f"into {target}")
    log("the first build downloads a few hundred Go modules and compiles them; "
        "allow 5-20 minutes on 2 cores")
    env = _go_env()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
        work = Path(tmp)
        log("fetching the Jaeger module ...")
        info = json.loads(_go(go, ["mod", "download", "-json",
                                   f"{JAEGER_MODULE}@{JAEGER_MODULE_VERSION}"],
                              work, env))
        src = Path(info["Dir"])
        released = json.loads(Path(info["Info"]).read_text()).get("Time", "")
        gomod = (src / "go.mod").read_text()
        gomod = re.sub(r"(?m)^module\s+\S+", "module tracequest.local/jaegerbuild",
                       gomod, count=1)
        gomod += f"\nrequire {JAEGER_MODULE} {JAEGER_MODULE_VERSION}\n"
        (work / "go.mod").write_text(gomod)
        shutil.copyfile(src / "go.sum", work / "go.sum")
        ldflags = " ".join([
            "-s", "-w",
            f"-X {_VERSION_PKG}.latestVersion=v{JAEGER_VERSION}",
            f"-X {_VERSION_PKG}.date={released}",
        ])
        log("compiling (no output until it is done) ...")
        partial = work / "jaeger"
        _go(go, ["build", "-mod=mod", "-trimpath", "-buildvcs=false",
                 "-ldflags", ldflags, "-o", str(partial), JAEGER_PACKAGE], work, env)
        os.replace(partial, target)
    log(f"built {target} in {time.monotonic() - started:.0f}s")
    return target


def ensure_program(find, override: str, refused, make, log=print) -> Path:
    """A program found (``override``'s file, else the cache), or else made once by ``make``.

    An override that names no usable file raises ``refused()``: it is never
    silently replaced by a build the learner did not ask for.
    """
    found = find()
    if found is not None:
        return found
    if os.environ.get(override):
        raise refused()
    return make(log=log)


def ensure_jaeger(log=print) -> Path:
    """The Jaeger binary, built once if it is not there yet."""
    return ensure_program(find_jaeger, "JAEGER_BIN", lambda: JaegerBuildError(jaeger_missing_reason()),
                          build_jaeger, log)


def jaeger_missing_reason() -> str:
    """One sentence for a pytest skip: why Jaeger is absent and how to get it."""
    return _missing_reason("JAEGER_BIN", f"the real Jaeger {JAEGER_VERSION} binary")


def _missing_reason(override: str, what: str) -> str:
    """Why a program built from Go is absent: a bad override, or not built yet and how to build it."""
    if os.environ.get(override):
        return (f"{override}={os.environ[override]} is not an executable file; "
                "fix it or unset it to use the cached build.")
    return (f"{what} is not built yet: run `{BUILD_COMMAND}` or `make backends` (needs Go "
            f"{MIN_GO[0]}.{MIN_GO[1]}+ and the Go module proxy), or set {override} "
            "to an existing binary.")


# ----------------------------------------------------------- the lab's Collector

def cached_collector_path() -> Path:
    """Where the lab's Collector for COLLECTOR_VERSION lives once built (may not exist)."""
    return cache_dir() / f"collector-{COLLECTOR_VERSION}" / COLLECTOR_BINARY_NAME


def find_collector() -> Path | None:
    """A usable lab Collector: ``$COLLECTOR_BIN`` first, then the cache."""
    return find_program("COLLECTOR_BIN", cached_collector_path())


def collector_missing_reason() -> str:
    """One sentence for a pytest skip: why the Collector is absent and how to get it."""
    return _missing_reason("COLLECTOR_BIN", f"the lab's Collector {COLLECTOR_VERSION}")


def collector_manifest(output: Path) -> dict:
    """The Collector Builder's manifest: our components, all at COLLECTOR_VERSION."""
    manifest: dict = {"dist": {"name": COLLECTOR_BINARY_NAME,
                               "description": "Trace Quest's OpenTelemetry Collector",
                               "version": COLLECTOR_VERSION,
                               "output_path": str(output)}}
    for kind, modules in COLLECTOR_COMPONENTS.items():
        manifest[kind] = [{"gomod": f"{module} v{COLLECTOR_VERSION}"} for module in modules]
    manifest["replaces"] = [f"{module} => {module} {version}"
                            for module, version in COLLECTOR_REPLACES.items()]
    return manifest


def build_collector(log=print) -> Path:
    """Build the lab's Collector with the Collector Builder into the cache; return its path.

    Like build_jaeger: one build per version at a time, linked under a
    temporary name and renamed into place, so an interrupted build leaves
    nothing half-made.
    """
    go = _check_go(f"the lab's Collector {COLLECTOR_VERSION}", "COLLECTOR_BIN",
                   CollectorBuildError)
    return build_once(log, f"collector-{COLLECTOR_VERSION}", f"the Collector {COLLECTOR_VERSION}",
                      cached_collector_path(), lambda target: _build_collector(go, target, log))


def _build_collector(go: str, target: Path, log) -> Path:
    import yaml   # only a build needs it

    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building the lab's Collector {COLLECTOR_VERSION} with the Collector Builder "
        f"into {target}")
    log("the first build downloads several hundred Go modules and compiles them; "
        "allow 5-15 minutes on 2 cores")
    env = _go_env()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
        work = Path(tmp)
        env["GOBIN"] = str(work / "bin")
        log("installing the Collector Builder ...")
        _go(go, ["install", f"{COLLECTOR_BUILDER_PACKAGE}@v{COLLECTOR_VERSION}"], work, env,
            CollectorBuildError)
        manifest = work / "manifest.yaml"
        manifest.write_text(yaml.safe_dump(collector_manifest(work / "dist"), sort_keys=False))
        log("generating and compiling (no output until it is done) ...")
        proc = subprocess.run([str(work / "bin" / "builder"), "--config", str(manifest)],
                              cwd=work, env=env, capture_output=True, text=True)
        built = work / "dist" / COLLECTOR_BINARY_NAME
        if proc.returncode != 0 or not _is_executable(built):
            raise CollectorBuildError(
                f"the Collector Builder failed (exit {proc.returncode}):\n"
                f"{(proc.stderr or proc.stdout).strip()[-4000:]}")
        os.replace(built, target)
    log(f"built {target} in {time.monotonic() - started:.0f}s")
    return target


def ensure_collector(log=print) -> Path:
    """The lab's Collector, built once if it is not there yet."""
    return ensure_program(find_collector, "COLLECTOR_BIN",
                          lambda: CollectorBuildError(collector_missing_reason()), build_collector, log)


def status() -> dict[str, dict]:
    """What each native backend program is and whether it is here, by backend name.

    For ``tracequest backends status``. Each entry: ``name``, ``version``,
    ``image`` (what compose/ runs instead), ``path`` (str, or None when not
    built), ``build`` (the command that builds it) and ``note`` (one line).
    """
    def where(found, override, missing) -> str:
        if not found:
            return missing
        return f"from {override}" if os.environ.get(override) else "cached"

    jaeger, collector = find_jaeger(), find_collector()
    return {
        "jaeger": {"name": "jaeger", "version": JAEGER_VERSION, "image": JAEGER_IMAGE,
                   "path": str(jaeger) if jaeger else None, "build": BUILD_COMMAND,
                   "note": f"{JAEGER_MODULE}@{JAEGER_MODULE_VERSION}, "
                           f"{where(jaeger, 'JAEGER_BIN', jaeger_missing_reason())}"},
        "collector": {"name": "collector", "version": COLLECTOR_VERSION,
                      "image": COLLECTOR_IMAGE,
                      "path": str(collector) if collector else None, "build": BUILD_COMMAND,
                      "note": f"built with the Collector Builder from core and contrib "
                              f"v{COLLECTOR_VERSION}, "
                              f"{where(collector, 'COLLECTOR_BIN', collector_missing_reason())}"},
    }


def missing_programs() -> list[str]:
    """The programs `tracequest backends build` would still build or fetch; [] when all are here."""
    from .zipkin import ZIPKIN_VERSION, find_zipkin   # zipkin.py builds on this module

    wanted = ((f"Jaeger {JAEGER_VERSION}", find_jaeger), (f"the Collector {COLLECTOR_VERSION}", find_collector),
              (f"Zipkin {ZIPKIN_VERSION}", find_zipkin))
    return [name for name, find in wanted if find() is None]


def status_line(entry: dict) -> str:
    """One entry of status() as a line a person reads."""
    where = entry["path"] or f"not built (run `{entry['build']}`)"
    return f"{entry['name']:<10} {entry['version']:<8} {where}"


_USAGE = "usage: python -m tracequest.binaries build|path [jaeger|collector] | status"

#: Per program: (find, ensure, missing reason).
_PROGRAMS = {
    "jaeger": (lambda: find_jaeger(), lambda log: ensure_jaeger(log=log),
               lambda: jaeger_missing_reason()),
    "collector": (lambda: find_collector(), lambda log: ensure_collector(log=log),
                  lambda: collector_missing_reason()),
}


def main(argv: list[str] | None = None) -> int:
    """``python -m tracequest.binaries build|path [jaeger|collector] | status``.

    ``build`` and ``path`` print one program's path (Jaeger unless named;
    stdout stays one line for scripts); ``status`` prints status() one line
    per backend.
    """
    args = sys.argv[1:] if argv is None else argv
    command, program = (args + ["jaeger"])[:2] if len(args) in (1, 2) else ("", "")
    if command not in ("build", "path", "status") or program not in _PROGRAMS \
            or (command == "status" and len(args) != 1):
        print(_USAGE, file=sys.stderr)
        return 2
    if command == "status":
        entries = status().values()
        for entry in entries:
            print(status_line(entry))
        return 0 if all(entry["path"] for entry in entries) else 1
    find, ensure, missing = _PROGRAMS[program]
    if command == "path":
        found = find()
        if found is None:
            print(missing(), file=sys.stderr)
            return 1
        print(found)
        return 0
    try:
        path = ensure(lambda line: print(line, file=sys.stderr))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
