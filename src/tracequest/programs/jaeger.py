"""Jaeger v2, the real one: built from the Go module proxy, run with the config compose mounts.

The lab's ``jaeger`` backend runs the genuine Jaeger v2 program, and every
backend but the embedded one keeps its traces there. No prebuilt download is
possible here, so it is compiled from the Go module proxy into the per-user
cache (:mod:`tracequest.programs.cache`), keyed by version.

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
``v1.76.1-0.<UTC commit time>-<commit>``), then the Collector's
``COLLECTOR_VERSION`` to the contrib release the new go.mod requires; the
compose files follow the test.

Why a wrapper module
--------------------
``go install pkg@version`` refuses modules whose go.mod has ``replace``
directives, and Jaeger v1.76.0 has one. So we build inside a throwaway module
that copies Jaeger's go.mod and go.sum (keeping Jaeger's own pinned
dependency hashes) and requires Jaeger itself.

Environment read by ``compose/jaeger/config.yaml`` (defaults suit a container)
------------------------------------------------------------------------------
``TQ_JAEGER_HOST`` (0.0.0.0), ``TQ_JAEGER_OTLP_GRPC_PORT`` (4317),
``TQ_JAEGER_OTLP_HTTP_PORT`` (4318), ``TQ_JAEGER_QUERY_HTTP_PORT`` (16686),
``TQ_JAEGER_QUERY_GRPC_PORT`` (16685), ``TQ_JAEGER_METRICS_PORT`` (8888).
:func:`jaeger_env` fills these in from a :class:`~tracequest.host.ports.Ports`;
:data:`NATIVE_JAEGER_ENV` is the lab's default layout (``Ports()``), Jaeger's
OTLP moved to its own pair behind the lab's Collector. Jaeger is ready when
``/api/v3/services`` answers (the config has no health-check extension).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from tracequest.host.paths import compose_file
from tracequest.host.ports import HOST, Ports
from tracequest.host.procs import Process
from tracequest.programs.cache import (BuildError, Program, build_once, cache_dir, find_program,
                                       missing_build_reason)
from tracequest.programs.golang import GO_NEEDS, check_go, go, go_env

#: Jaeger release the cached binary is (see "Which Jaeger" above).
JAEGER_VERSION = "2.13.0"
#: Go module version of github.com/jaegertracing/jaeger that is that release.
JAEGER_MODULE_VERSION = "v1.76.0"
#: The Jaeger image compose/ runs: the release the native build compiles.
JAEGER_IMAGE = f"jaegertracing/jaeger:{JAEGER_VERSION}"
#: Jaeger v1.76.0's go.mod requires collector-contrib v0.140.1 (core v0.140.0):
#: the collector components linked into the Jaeger binary itself.
JAEGER_COLLECTOR_VERSION = "0.140.1"

JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_PACKAGE = JAEGER_MODULE + "/cmd/jaeger"
_VERSION_PKG = JAEGER_MODULE + "/internal/version"
#: The variable that points the lab at a Jaeger binary of one's own.
OVERRIDE = "JAEGER_BIN"


class JaegerBuildError(BuildError):
    """The Jaeger binary could not be built."""


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


#: Native Jaeger behind a native collector, on the lab's default ports.
NATIVE_JAEGER_ENV = jaeger_env(Ports())


def jaeger_process(binary: Path, ports: Ports, behind_collector: bool = True,
                   badger_dir: Path | None = None) -> Process:
    """Real Jaeger with the config compose/ mounts, its listeners moved to ``ports``.

    With ``badger_dir`` it keeps its spans in Badger files there, which outlive
    a stop; otherwise in memory.
    """
    env = jaeger_env(ports, behind_collector=behind_collector)
    config = "config.yaml"
    if badger_dir is not None:
        config = "config-badger.yaml"
        env["TQ_JAEGER_BADGER_DIR"] = str(Path(badger_dir).resolve())
    argv = [str(binary), "--config", str(compose_file("jaeger", config))]
    return Process("jaeger", argv, f"http://{HOST}:{ports.query}/api/v3/services", env)


# --- the binary -----------------------------------------------------------------------

def cached_jaeger_path() -> Path:
    """Where the binary for JAEGER_VERSION lives once built (may not exist)."""
    return cache_dir() / f"jaeger-{JAEGER_VERSION}" / "jaeger"


def find_jaeger() -> Path | None:
    """A usable Jaeger binary, or None: ``$JAEGER_BIN`` first, then the cache."""
    return find_program(OVERRIDE, cached_jaeger_path())


def jaeger_missing_reason() -> str:
    """One sentence for an error or a pytest skip: why Jaeger is absent and how to get it."""
    return missing_build_reason(OVERRIDE, f"the real Jaeger {JAEGER_VERSION} binary", GO_NEEDS)


def build_jaeger(log=print) -> Path:
    """Compile Jaeger from the Go module proxy into the cache; return its path.

    One build per version runs at a time: a caller that had to wait for
    another build reuses its binary. The binary is linked under a temporary
    name beside its final place and renamed into it, so an interrupted build
    never leaves a broken binary.
    """
    go_path = check_go(f"Jaeger {JAEGER_VERSION}", OVERRIDE, JaegerBuildError)
    return build_once(log, f"jaeger-{JAEGER_VERSION}", f"Jaeger {JAEGER_VERSION}",
                      cached_jaeger_path(), lambda target: _compile(go_path, target, log))


def _compile(go_path: str, target: Path, log) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building Jaeger {JAEGER_VERSION} ({JAEGER_MODULE}@{JAEGER_MODULE_VERSION}) "
        f"into {target}")
    log("the first build downloads a few hundred Go modules and compiles them; "
        "allow 5-20 minutes on 2 cores")
    env = go_env()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
        work = Path(tmp)
        log("fetching the Jaeger module ...")
        info = json.loads(go(go_path, ["mod", "download", "-json",
                                       f"{JAEGER_MODULE}@{JAEGER_MODULE_VERSION}"],
                             work, env, JaegerBuildError))
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
        go(go_path, ["build", "-mod=mod", "-trimpath", "-buildvcs=false",
                     "-ldflags", ldflags, "-o", str(partial), JAEGER_PACKAGE], work, env,
           JaegerBuildError)
        os.replace(partial, target)
    log(f"built {target} in {time.monotonic() - started:.0f}s")
    return target


PROGRAM = Program(
    name="jaeger", title=f"Jaeger {JAEGER_VERSION}", version=JAEGER_VERSION, image=JAEGER_IMAGE,
    origin=f"{JAEGER_MODULE}@{JAEGER_MODULE_VERSION}", override=OVERRIDE,
    find=find_jaeger, missing_reason=jaeger_missing_reason, make=build_jaeger,
    error=JaegerBuildError)


def ensure_jaeger(log=print) -> Path:
    """The Jaeger binary, built once if it is not there yet."""
    return PROGRAM.ensure(log=log)
