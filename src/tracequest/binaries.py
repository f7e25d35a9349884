"""Build and locate the real Jaeger v2 binary; pin the images compose/ runs.

The lab's ``jaeger`` and ``collector`` backends run the genuine Jaeger v2
program, which is also an OpenTelemetry Collector distribution: one binary
loads both Jaeger's own config and the collector pipelines in ``compose/``.
No prebuilt download is possible here, so we compile it from the Go module
proxy and keep the result in a per-user cache keyed by version. A fresh clone
on the same machine reuses that binary instead of compiling again.

What Docker runs is what the tests run
--------------------------------------
One constant per upstream image: :data:`JAEGER_IMAGE` and
:data:`COLLECTOR_IMAGE` are the only images ``compose/*.yaml`` may name for
Jaeger and the Collector (``tests/test_compose.py`` fails on any other tag).
The Jaeger image is the release the native build compiles; the contrib image
is the Collector release whose components that same Jaeger links.

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

#: Jaeger v1.76.0's go.mod requires collector-contrib v0.140.1 (core v0.140.0),
#: the pair the contrib 0.140.1 image is built from: same components, same code.
COLLECTOR_VERSION = "0.140.1"
#: The Collector image compose/ runs.
COLLECTOR_IMAGE = f"otel/opentelemetry-collector-contrib:{COLLECTOR_VERSION}"

JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_PACKAGE = JAEGER_MODULE + "/cmd/jaeger"
#: Go module path prefix of the contrib components, as `go version -m` lists them.
COLLECTOR_CONTRIB_MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib"
#: Oldest Go that builds JAEGER_MODULE_VERSION (its go.mod says 1.24.6).
MIN_GO = (1, 24)

#: How a learner builds what is missing (shown by errors and by status()).
BUILD_COMMAND = "tracequest backends build"


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
    }


def collector_env(ports: Ports) -> dict[str, str]:
    """Environment that runs a compose/collector/ pipeline natively, in front of jaeger_env."""
    return {
        "TQ_COLLECTOR_HOST": HOST,
        "TQ_COLLECTOR_OTLP_GRPC_PORT": str(ports.otlp_grpc),
        "TQ_COLLECTOR_OTLP_HTTP_PORT": str(ports.otlp_http),
        "TQ_COLLECTOR_METRICS_PORT": str(ports.collector_metrics),
        "TQ_JAEGER_OTLP_ENDPOINT": f"{HOST}:{ports.jaeger_otlp_grpc}",
    }


#: Native Jaeger behind a native collector, on the lab's default ports.
NATIVE_JAEGER_ENV = jaeger_env(Ports())
#: A native collector pipeline in front of NATIVE_JAEGER_ENV.
NATIVE_COLLECTOR_ENV = collector_env(Ports())

_VERSION_PKG = JAEGER_MODULE + "/internal/version"


class JaegerBuildError(RuntimeError):
    """The Jaeger binary could not be built; the message says what to do."""


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
    override = os.environ.get("JAEGER_BIN")
    if override:
        path = Path(override).expanduser()
        return path if _is_executable(path) else None
    path = cached_jaeger_path()
    return path if _is_executable(path) else None


#: Where Go lands when installed from go.dev but not (yet) on PATH.
_GO_FALLBACKS = ("/usr/local/go/bin/go",)


def _find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    goroot = os.environ.get("GOROOT")
    candidates = ([os.path.join(goroot, "bin", "go")] if goroot else []) + list(_GO_FALLBACKS)
    return next((c for c in candidates if _is_executable(Path(c))), None)


def _check_go() -> str:
    """Path of a Go toolchain new enough, or a JaegerBuildError saying what to do."""
    go = _find_go()
    if go is None:
        raise JaegerBuildError(
            "Go is not installed, so Jaeger cannot be built. Install Go "
            f"{MIN_GO[0]}.{MIN_GO[1]} or newer (https://go.dev/dl/), or set "
            f"JAEGER_BIN to an existing jaeger {JAEGER_VERSION} binary.")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True,
                         text=True).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match:
        raise JaegerBuildError(f"cannot tell the Go version from {out!r} ({go}).")
    found = (int(match.group(1)), int(match.group(2)))
    if found < MIN_GO:
        raise JaegerBuildError(
            f"Go {found[0]}.{found[1]} is too old to build Jaeger {JAEGER_VERSION}; "
            f"it needs Go {MIN_GO[0]}.{MIN_GO[1]} or newer. Upgrade Go, or set "
            f"JAEGER_BIN to an existing jaeger {JAEGER_VERSION} binary.")
    return go


def _go(go: str, args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise JaegerBuildError(
            f"`go {' '.join(args)}` failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()[-4000:]}")
    return proc.stdout


@contextmanager
def _build_lock(log) -> Iterator[bool]:
    """Hold this version's build lock; yields True if another build held it first.

    Two test runs or two terminals asking for Jaeger at once would otherwise
    compile it twice side by side, doubling a long build on a small machine.
    """
    if fcntl is None:   # Windows: no lock; the atomic rename keeps overlapping builds safe
        yield False
        return
    lock = cache_dir() / f".jaeger-{JAEGER_VERSION}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            log(f"another build of Jaeger {JAEGER_VERSION} is running; waiting for it ...")
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
    with _build_lock(log) as waited:
        target = cached_jaeger_path()
        if waited and _is_executable(target):
            log(f"reusing {target}, built meanwhile")
            return target
        return _compile(go, target, log)


def _compile(go: str, target: Path, log) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building Jaeger {JAEGER_VERSION} ({JAEGER_MODULE}@{JAEGER_MODULE_VERSION}) "
        f"into {target}")
    log("the first build downloads a few hundred Go modules and compiles them; "
        "allow 5-20 minutes on 2 cores")
    # GOFLAGS is cleared so a user's -mod=vendor or similar cannot leak in.
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="",
               GOWORK="off")
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


def ensure_jaeger(log=print) -> Path:
    """The Jaeger binary, built once if it is not there yet."""
    found = find_jaeger()
    if found is not None:
        return found
    if os.environ.get("JAEGER_BIN"):
        raise JaegerBuildError(
            f"JAEGER_BIN={os.environ['JAEGER_BIN']} is not an executable file; "
            "fix it or unset it to use the cached build.")
    return build_jaeger(log=log)


def jaeger_missing_reason() -> str:
    """One sentence for a pytest skip: why Jaeger is absent and how to get it."""
    if os.environ.get("JAEGER_BIN"):
        return (f"JAEGER_BIN={os.environ['JAEGER_BIN']} is not an executable file; "
                "fix it or unset it to use the cached build.")
    return (f"the real Jaeger {JAEGER_VERSION} binary is not built yet: run "
            f"`{BUILD_COMMAND}` or `make backends` (needs Go "
            f"{MIN_GO[0]}.{MIN_GO[1]}+ and the Go module proxy), or set JAEGER_BIN "
            "to an existing binary.")


def status() -> dict[str, dict]:
    """What each native backend program is and whether it is here, by backend name.

    For ``tracequest backends status``. Each entry: ``name``, ``version``,
    ``image`` (what compose/ runs instead), ``path`` (str, or None when not
    built), ``build`` (the command that builds it) and ``note`` (one line).
    The collector is the Jaeger binary itself, so both share one path.
    """
    found = find_jaeger()
    path = str(found) if found else None
    where = ("from JAEGER_BIN" if os.environ.get("JAEGER_BIN") else "cached") if found \
        else jaeger_missing_reason()
    return {
        "jaeger": {"name": "jaeger", "version": JAEGER_VERSION, "image": JAEGER_IMAGE,
                   "path": path, "build": BUILD_COMMAND,
                   "note": f"{JAEGER_MODULE}@{JAEGER_MODULE_VERSION}, {where}"},
        "collector": {"name": "collector", "version": COLLECTOR_VERSION,
                      "image": COLLECTOR_IMAGE, "path": path, "build": BUILD_COMMAND,
                      "note": f"the jaeger binary, which links collector-contrib "
                              f"v{COLLECTOR_VERSION} components"},
    }


def status_line(entry: dict) -> str:
    """One entry of status() as a line a person reads."""
    where = entry["path"] or f"not built (run `{entry['build']}`)"
    return f"{entry['name']:<10} {entry['version']:<8} {where}"


_USAGE = "usage: python -m tracequest.binaries build|path|status"


def main(argv: list[str] | None = None) -> int:
    """``python -m tracequest.binaries build|path|status``.

    ``build`` and ``path`` print the binary's path (stdout stays one line for
    scripts); ``status`` prints status() one line per backend.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("build", "path", "status"):
        print(_USAGE, file=sys.stderr)
        return 2
    if args[0] == "status":
        entries = status().values()
        for entry in entries:
            print(status_line(entry))
        return 0 if all(entry["path"] for entry in entries) else 1
    if args[0] == "path":
        found = find_jaeger()
        if found is None:
            print(jaeger_missing_reason(), file=sys.stderr)
            return 1
        print(found)
        return 0
    try:
        path = ensure_jaeger(log=lambda line: print(line, file=sys.stderr))
    except JaegerBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
