"""Build and locate the real Jaeger v2 binary.

The lab's ``jaeger`` and ``collector`` backends run the genuine Jaeger v2
program, which is also an OpenTelemetry Collector distribution: the same
binary loads Jaeger's own config and the collector pipelines in ``compose/``.
No prebuilt download is possible here, so we compile it from the Go module
proxy and keep the result in a per-user cache keyed by version.  A fresh clone
on the same machine therefore reuses the binary instead of compiling again.

Jaeger v2's module path has no ``/v2`` suffix, so the ``v2.20.0`` tag cannot
be requested by name; we ask for the tag's commit and Go turns it into a
pseudo-version.

Environment variables read by the collector configs in ``compose/`` (defaults
are the in-container values of the Docker variants; set them to 127.0.0.1
addresses for native runs):

=========================  ==================  ====================================
variable                   default             meaning
=========================  ==================  ====================================
TQ_OTLP_GRPC_ENDPOINT      0.0.0.0:4317        collector OTLP/gRPC receiver
TQ_OTLP_HTTP_ENDPOINT      0.0.0.0:4318        collector OTLP/HTTP receiver
TQ_HEALTH_ENDPOINT         0.0.0.0:13133       collector health_check extension
TQ_METRICS_PORT            8888                collector's own telemetry port
JAEGER_OTLP_ENDPOINT       jaeger:4317         where the collector sends spans
=========================  ==================  ====================================

and by ``compose/jaeger/config.yaml`` (Jaeger itself):

=========================  ==================  ====================================
JAEGER_OTLP_GRPC_ENDPOINT  0.0.0.0:4317        Jaeger's OTLP/gRPC receiver
JAEGER_OTLP_HTTP_ENDPOINT  0.0.0.0:4318        Jaeger's OTLP/HTTP receiver
JAEGER_QUERY_HTTP_ENDPOINT 0.0.0.0:16686       query API v3 and UI
JAEGER_QUERY_GRPC_ENDPOINT 0.0.0.0:16685       query gRPC API
JAEGER_HEALTH_ENDPOINT     0.0.0.0:13133       health_check extension
JAEGER_METRICS_PORT        8888                Jaeger's own telemetry port
=========================  ==================  ====================================

:data:`NATIVE_COLLECTOR_ENV` and :data:`NATIVE_JAEGER_ENV` hold the native
defaults (collector on 4317/4318, Jaeger's OTLP moved to 4327/4328).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JAEGER_VERSION = "2.20.0"
#: Commit of the v2.20.0 tag; Go resolves it to a pseudo-version.
JAEGER_COMMIT = "798e4b0fcf22609e381df764a01461affd813e1e"
JAEGER_PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"
#: Jaeger 2.20.0's go.mod asks for this Go release.
MIN_GO = (1, 26)

#: Environment for a native collector pipeline (see the module docstring).
NATIVE_COLLECTOR_ENV = {
    "TQ_OTLP_GRPC_ENDPOINT": "127.0.0.1:4317",
    "TQ_OTLP_HTTP_ENDPOINT": "127.0.0.1:4318",
    "TQ_HEALTH_ENDPOINT": "127.0.0.1:13134",
    "TQ_METRICS_PORT": "8889",
    "JAEGER_OTLP_ENDPOINT": "127.0.0.1:4327",
}
#: Environment for native Jaeger behind a native collector.
NATIVE_JAEGER_ENV = {
    "JAEGER_OTLP_GRPC_ENDPOINT": "127.0.0.1:4327",
    "JAEGER_OTLP_HTTP_ENDPOINT": "127.0.0.1:4328",
    "JAEGER_QUERY_HTTP_ENDPOINT": "127.0.0.1:16686",
    "JAEGER_QUERY_GRPC_ENDPOINT": "127.0.0.1:16685",
    "JAEGER_HEALTH_ENDPOINT": "127.0.0.1:13133",
    "JAEGER_METRICS_PORT": "8888",
}

_VERSION_PKG = "github.com/jaegertracing/jaeger/internal/version"


class JaegerBuildError(RuntimeError):
    """Raised when the Jaeger binary cannot be built; the message says what to do."""


def cache_dir() -> Path:
    """Where built binaries live: outside the repo, so clones share them."""
    root = os.environ.get("TRACEQUEST_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "tracequest"


def cached_jaeger_path() -> Path:
    """The versioned cache location of the Jaeger binary (may not exist yet)."""
    return cache_dir() / f"jaeger-{JAEGER_VERSION}" / "jaeger"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_jaeger() -> Path | None:
    """Return a usable Jaeger binary: ``$JAEGER_BIN`` first, then the cache."""
    override = os.environ.get("JAEGER_BIN")
    if override:
        path = Path(override).expanduser()
        return path if _is_executable(path) else None
    path = cached_jaeger_path()
    return path if _is_executable(path) else None


def _go_version(go: str) -> tuple[int, int]:
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                         check=True).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match:
        raise JaegerBuildError(f"cannot read the Go version from {out!r}")
    return int(match.group(1)), int(match.group(2))


def _check_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise JaegerBuildError(
            "Go is not installed, so Jaeger cannot be built. Install Go "
            f"{MIN_GO[0]}.{MIN_GO[1]} or newer (https://go.dev/dl/), or point "
            "JAEGER_BIN at an existing jaeger 2.20.0 binary.")
    found = _go_version(go)
    if found < MIN_GO:
        raise JaegerBuildError(
            f"Go {found[0]}.{found[1]} is too old to build Jaeger {JAEGER_VERSION}; "
            f"it needs Go {MIN_GO[0]}.{MIN_GO[1]} or newer. Upgrade Go, or point "
            "JAEGER_BIN at an existing jaeger 2.20.0 binary.")
    return go


def build_jaeger(log=print) -> Path:
    """Compile Jaeger from the Go module proxy into the cache and return its path.

    The binary is linked under a temporary name in the target directory and
    renamed into place, so an interrupted build never leaves a broken binary.
    """
    go = _check_go()
    target = cached_jaeger_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building Jaeger {JAEGER_VERSION} ({JAEGER_PACKAGE}@{JAEGER_COMMIT[:12]}) "
        f"into {target}")
    log("this downloads ~200 Go modules and compiles them; expect 10-20 minutes "
        "on 2 cores the first time")
    ldflags = " ".join([
        "-s", "-w",
        f"-X {_VERSION_PKG}.latestVersion=v{JAEGER_VERSION}",
        f"-X {_VERSION_PKG}.commitSHA={JAEGER_COMMIT}",
    ])
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
        env["GOBIN"] = tmp
        cmd = [go, "install", "-trimpath", "-ldflags", ldflags,
               f"{JAEGER_PACKAGE}@{JAEGER_COMMIT}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise JaegerBuildError(
                f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
                f"{proc.stderr.strip()[-4000:]}")
        built = Path(tmp) / "jaeger"
        os.replace(built, target)
    log(f"built {target} in {time.monotonic() - started:.0f}s")
    return target


def ensure_jaeger(log=print) -> Path:
    """Return the Jaeger binary, building it once if it is not there yet."""
    found = find_jaeger()
    if found is not None:
        return found
    if os.environ.get("JAEGER_BIN"):
        raise JaegerBuildError(
            f"JAEGER_BIN={os.environ['JAEGER_BIN']} is not an executable file.")
    return build_jaeger(log=log)


def jaeger_missing_reason() -> str:
    """One sentence for a pytest skip: why Jaeger is absent and how to get it."""
    if os.environ.get("JAEGER_BIN"):
        return (f"JAEGER_BIN={os.environ['JAEGER_BIN']} is not an executable file; "
                "fix it or unset it to use the cached build.")
    return (f"the real Jaeger {JAEGER_VERSION} binary is not built yet: run "
            "`make backends` (or `python -m tracequest.binaries build`, needs Go "
            f"{MIN_GO[0]}.{MIN_GO[1]}+) or set JAEGER_BIN to an existing binary.")


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
