"""Build and locate the real Jaeger v2 binary.

The lab's ``jaeger`` and ``collector`` backends run the genuine Jaeger v2
program, which is also an OpenTelemetry Collector distribution: one binary
loads both Jaeger's own config and the collector pipelines in ``compose/``.
No prebuilt download is possible here, so we compile it from the Go module
proxy and keep the result in a per-user cache keyed by version. A fresh clone
on the same machine reuses that binary instead of compiling again.

Which Jaeger
------------
Jaeger v2's Go module path has no ``/v2`` suffix, so its ``v2.x`` tags are not
valid Go versions; every v2 release is reachable only through the module's
``v1.x`` tags or a pseudo-version. Until the end of 2025 each release carried
both tags, and ``v1.76.0`` is the last of them: it *is* Jaeger **v2.13.0**.
The lab's target, v2.20.0 (commit ``798e4b0fcf22``), exists only as a
pseudo-version, and the module proxy this project can reach refuses to
resolve a bare commit hash. To move to it, set ``JAEGER_VERSION = "2.20.0"``
and ``JAEGER_MODULE_VERSION`` to its full pseudo-version
(``v1.76.1-0.<UTC commit time>-798e4b0fcf22``); nothing else changes.

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

:data:`NATIVE_JAEGER_ENV` and :data:`NATIVE_COLLECTOR_ENV` hold the native
layout: collector on 4317/4318, Jaeger's OTLP moved to 4327/4328, query on
16686. Tests replace every port with a free ephemeral one. The configs have
no health-check extension (its name differs between collector versions):
Jaeger is ready when ``/api/v3/services`` answers, a collector when its
OTLP/HTTP port answers.
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
from pathlib import Path

#: Jaeger release the cached binary is (see "Which Jaeger" above).
JAEGER_VERSION = "2.13.0"
#: Go module version of github.com/jaegertracing/jaeger that is that release.
JAEGER_MODULE_VERSION = "v1.76.0"
#: The release the lab aims at, and its commit, for when the proxy serves it.
JAEGER_TARGET_VERSION = "2.20.0"
JAEGER_TARGET_COMMIT = "798e4b0fcf22609e381df764a01461affd813e1e"

JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_PACKAGE = JAEGER_MODULE + "/cmd/jaeger"
#: Oldest Go that builds JAEGER_MODULE_VERSION (v2.20.0 needs 1.26).
MIN_GO = (1, 24)

#: Native Jaeger behind a native collector (see the module docstring).
NATIVE_JAEGER_ENV = {
    "TQ_JAEGER_HOST": "127.0.0.1",
    "TQ_JAEGER_OTLP_GRPC_PORT": "4327",
    "TQ_JAEGER_OTLP_HTTP_PORT": "4328",
    "TQ_JAEGER_QUERY_HTTP_PORT": "16686",
    "TQ_JAEGER_QUERY_GRPC_PORT": "16685",
    "TQ_JAEGER_METRICS_PORT": "8888",
}
#: A native collector pipeline in front of NATIVE_JAEGER_ENV.
NATIVE_COLLECTOR_ENV = {
    "TQ_COLLECTOR_HOST": "127.0.0.1",
    "TQ_COLLECTOR_OTLP_GRPC_PORT": "4317",
    "TQ_COLLECTOR_OTLP_HTTP_PORT": "4318",
    "TQ_COLLECTOR_METRICS_PORT": "8889",
    "TQ_JAEGER_OTLP_ENDPOINT": "127.0.0.1:4327",
}

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


def build_jaeger(log=print) -> Path:
    """Compile Jaeger from the Go module proxy into the cache; return its path.

    The binary is linked under a temporary name beside its final place and
    renamed into it, so an interrupted build never leaves a broken binary.
    """
    go = _check_go()
    target = cached_jaeger_path()
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
            "`make backends` or `python -m tracequest.binaries build` (needs Go "
            f"{MIN_GO[0]}.{MIN_GO[1]}+ and the Go module proxy), or set JAEGER_BIN "
            "to an existing binary.")


def main(argv: list[str] | None = None) -> int:
    """``python -m tracequest.binaries build|path``: print the binary's path."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("build", "path"):
        print("usage: python -m tracequest.binaries build|path", file=sys.stderr)
        return 2
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
