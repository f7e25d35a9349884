"""The lab's own OpenTelemetry Collector: built with the Collector Builder, run on compose's configs.

The ``collector`` and ``fan-out`` backends, the scale-out topology and the
collector quests put this Collector in front of Jaeger, loading the pipelines
in ``compose/collector/`` (or a learner's own file).

Why a Collector of our own
--------------------------
Jaeger v2 is itself a collector distribution, but it carries no Zipkin or
load-balancing exporter and no transform or redaction processor. The
Collector Builder (ocb) compiles exactly :data:`COLLECTOR_COMPONENTS`, every
one at :data:`COLLECTOR_VERSION`, the release the compose files' contrib
image runs (:data:`COLLECTOR_IMAGE`), so a config that loads here loads in
Docker.

Environment read by ``compose/collector/*.yaml`` (defaults suit a container)
----------------------------------------------------------------------------
``TQ_COLLECTOR_HOST`` (0.0.0.0), ``TQ_COLLECTOR_OTLP_GRPC_PORT`` (4317),
``TQ_COLLECTOR_OTLP_HTTP_PORT`` (4318), ``TQ_COLLECTOR_METRICS_PORT`` (8888),
``TQ_JAEGER_OTLP_ENDPOINT`` (jaeger:4317, host:port of Jaeger's OTLP/gRPC);
``tail-sampling.yaml`` also ``TQ_TAIL_DECISION_WAIT`` (5s).
:func:`collector_env` fills these in from a :class:`~tracequest.host.ports.Ports`,
in front of :func:`~tracequest.programs.jaeger.jaeger_env`; :data:`NATIVE_COLLECTOR_ENV`
is the lab's default layout. Our configs carry the health_check extension; a
learner's file is ready once its OTLP/HTTP port answers.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from tracequest.host.ports import HOST, Ports
from tracequest.host.procs import Process
from tracequest.programs.cache import (BuildError, Program, build_once, cache_dir, find_program,
                                       is_executable, missing_build_reason)
from tracequest.programs.golang import GO_NEEDS, check_go, go, go_env

#: The lab's own Collector: built with the Collector Builder from these components,
#: all at this release (core and contrib resolve together at it here).
COLLECTOR_VERSION = "0.161.0"
#: The Collector image compose/ runs: the contrib distribution of the same release.
COLLECTOR_IMAGE = f"otel/opentelemetry-collector-contrib:{COLLECTOR_VERSION}"
#: Go module path prefix of the contrib components, as `go version -m` lists them.
COLLECTOR_CONTRIB_MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib"
#: The variable that points the lab at a Collector binary of one's own.
OVERRIDE = "COLLECTOR_BIN"

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


class CollectorBuildError(BuildError):
    """The lab's Collector could not be built."""


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


#: A native collector pipeline in front of NATIVE_JAEGER_ENV.
NATIVE_COLLECTOR_ENV = collector_env(Ports())


def collector_process(binary: Path, config: Path, env: dict[str, str], health_url: str | None = None,
                      name: str = "collector", otlp_http_url: str = "") -> Process:
    """The Collector running ``config`` with ``env``.

    A config of ours carries the health_check extension, so it is ready when
    ``health_url`` answers; a learner's own file is ready once its OTLP/HTTP
    port answers at all (GET on it answers 405).
    """
    argv = [str(binary), "--config", str(config)]
    if health_url:
        return Process(name, argv, health_url, env)
    return Process(name, argv, otlp_http_url, env, any_answer_is_healthy=True)


# --- the binary -----------------------------------------------------------------------

def cached_collector_path() -> Path:
    """Where the lab's Collector for COLLECTOR_VERSION lives once built (may not exist)."""
    return cache_dir() / f"collector-{COLLECTOR_VERSION}" / COLLECTOR_BINARY_NAME


def find_collector() -> Path | None:
    """A usable lab Collector: ``$COLLECTOR_BIN`` first, then the cache."""
    return find_program(OVERRIDE, cached_collector_path())


def collector_missing_reason() -> str:
    """One sentence for an error or a pytest skip: why the Collector is absent and how to get it."""
    return missing_build_reason(OVERRIDE, f"the lab's Collector {COLLECTOR_VERSION}", GO_NEEDS)


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
    go_path = check_go(f"the lab's Collector {COLLECTOR_VERSION}", OVERRIDE, CollectorBuildError)
    return build_once(log, f"collector-{COLLECTOR_VERSION}", f"the Collector {COLLECTOR_VERSION}",
                      cached_collector_path(), lambda target: _build(go_path, target, log))


def _build(go_path: str, target: Path, log) -> Path:
    import yaml  # only a build needs it: a lazy import keeps `tracequest` quick to start

    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building the lab's Collector {COLLECTOR_VERSION} with the Collector Builder "
        f"into {target}")
    log("the first build downloads several hundred Go modules and compiles them; "
        "allow 5-15 minutes on 2 cores")
    env = go_env()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
        work = Path(tmp)
        env["GOBIN"] = str(work / "bin")
        log("installing the Collector Builder ...")
        go(go_path, ["install", f"{COLLECTOR_BUILDER_PACKAGE}@v{COLLECTOR_VERSION}"], work, env,
           CollectorBuildError)
        manifest = work / "manifest.yaml"
        manifest.write_text(yaml.safe_dump(collector_manifest(work / "dist"), sort_keys=False))
        log("generating and compiling (no output until it is done) ...")
        proc = subprocess.run([str(work / "bin" / "builder"), "--config", str(manifest)],
                              cwd=work, env=env, capture_output=True, text=True)
        built = work / "dist" / COLLECTOR_BINARY_NAME
        if proc.returncode != 0 or not is_executable(built):
            raise CollectorBuildError(
                f"the Collector Builder failed (exit {proc.returncode}):\n"
                f"{(proc.stderr or proc.stdout).strip()[-4000:]}")
        os.replace(built, target)
    log(f"built {target} in {time.monotonic() - started:.0f}s")
    return target


PROGRAM = Program(
    name="collector", title=f"the Collector {COLLECTOR_VERSION}", version=COLLECTOR_VERSION,
    image=COLLECTOR_IMAGE,
    origin=f"built with the Collector Builder from core and contrib v{COLLECTOR_VERSION}",
    override=OVERRIDE, find=find_collector, missing_reason=collector_missing_reason,
    make=build_collector, error=CollectorBuildError)


def ensure_collector(log=print) -> Path:
    """The lab's Collector, built once if it is not there yet."""
    return PROGRAM.ensure(log=log)
