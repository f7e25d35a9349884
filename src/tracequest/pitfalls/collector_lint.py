"""A collector config read for the mistakes that lose spans without an error.

The collector starts happily with each of these: a receiver that binds
localhost (the default since 0.104) is unreachable from other containers;
memory_limiter only protects what comes after it; batching before
tail_sampling splits traces the sampler needs whole; and a pipeline that
names a component nobody defined refuses to start.

A receiver on localhost is a mistake only for a collector in a container: run
natively, 127.0.0.1 is what it should bind. So it is named when a compose file
beside the config (or one folder up, as compose/ holds them) mounts it into a
container, judged with that container's environment, or when the doctor itself
runs in a container.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from tracequest.pitfalls.container import compose_mounts, is_local
from tracequest.pitfalls.findings import Finding, bad, good
from tracequest.quests.collector_config import CollectorConfig, kind_of

TOPIC = "collector config"


def check_collector_config(path: Path, env: Mapping[str, str] | None = None,
                           container: str = "") -> list[Finding]:
    """Receivers and pipelines; ``container`` says why the doctor thinks it runs in one ('' if not)."""
    env = os.environ if env is None else env
    path = Path(path)
    try:
        config = CollectorConfig.read(path)
    except (OSError, yaml.YAMLError) as exc:
        return [bad(TOPIC, "unreadable-config", f"{path} cannot be read: {exc}".splitlines()[0],
                    "fix the file (python -c 'import yaml,sys; yaml.safe_load(open(sys.argv[1]))' FILE)")]
    mounted = compose_mounts([path.parent, path.parent.parent]).get(path.resolve(), [])
    if mounted:
        findings = [f for where, service_env in mounted
                    for f in local_receivers(config, service_env, f"{path.name}: {where}")]
    elif container:
        findings = local_receivers(config, env, f"{path.name}: this process runs in a container ({container})")
    else:
        findings = []
    findings += _pipelines(config)
    if not findings:
        native = "" if mounted or container or not _bound_locally(config, env) else \
            " (they bind localhost: right for a collector run on this machine; in a container, 0.0.0.0)"
        findings.append(good(TOPIC, f"{path.name}: receivers reachable{native}, pipelines in a sound order"))
    return findings


def local_receivers(config: CollectorConfig, env: Mapping[str, str], where: str) -> list[Finding]:
    """Each OTLP receiver of a collector meant for a container (``where`` says why) that binds localhost."""
    findings = []
    for name, protocol, endpoint in _receiver_endpoints(config, env):
        if not endpoint or is_local(endpoint.rsplit(":", 1)[0]):
            shown = f"endpoint {endpoint}" if endpoint else "no endpoint, so it binds localhost:<port>"
            findings.append(bad(TOPIC, "receiver-on-localhost",
                                f"{where}, and its receiver {name} ({protocol}) has {shown}: "
                                "no other container can reach it",
                                f"set endpoint: 0.0.0.0:{4317 if protocol == 'grpc' else 4318}"))
    return findings


def _receiver_endpoints(config: CollectorConfig, env: Mapping[str, str]):
    """(receiver, protocol, endpoint with ${env:...} filled in) of each OTLP receiver."""
    for name, body in config.section("receivers").items():
        protocols = (body or {}).get("protocols") if kind_of(name) == "otlp" else None
        for protocol, settings in (protocols or {}).items():
            yield name, protocol, CollectorConfig.resolve((settings or {}).get("endpoint") or "", env)


def _bound_locally(config: CollectorConfig, env: Mapping[str, str]) -> bool:
    return any(not endpoint or is_local(endpoint.rsplit(":", 1)[0])
               for _, _, endpoint in _receiver_endpoints(config, env))


def _pipelines(config: CollectorConfig) -> list[Finding]:
    findings = []
    pipelines = (config.data.get("service") or {}).get("pipelines") or {}
    for pipeline, body in pipelines.items():
        body = body or {}
        processors = list(body.get("processors") or [])
        kinds = [kind_of(p) for p in processors]
        if "memory_limiter" in kinds and kinds[0] != "memory_limiter":
            findings.append(bad(TOPIC, "memory-limiter-not-first",
                                f"pipeline {pipeline}: memory_limiter comes after {processors[0]}",
                                "put memory_limiter first in processors"))
        if "batch" in kinds and "tail_sampling" in kinds and kinds.index("batch") < kinds.index("tail_sampling"):
            findings.append(bad(TOPIC, "batch-before-tail-sampling",
                                f"pipeline {pipeline}: batch comes before tail_sampling",
                                "put tail_sampling before batch"))
        for section in ("receivers", "processors", "exporters"):
            defined = set(config.section(section)) | set(config.section("connectors"))
            for component in body.get(section) or []:
                if component not in defined:
                    findings.append(bad(TOPIC, "undefined-component",
                                        f"pipeline {pipeline} names {section[:-1]} {component}, "
                                        f"which {section} does not define",
                                        f"define {component} under {section}, or remove it from the pipeline"))
    return findings


def check_compose(folder: Path) -> list[Finding]:
    """Every collector config that compose/ mounts: its receivers must bind 0.0.0.0."""
    mounts = compose_mounts([folder])
    findings = []
    for path, places in sorted(mounts.items()):
        try:
            config = CollectorConfig.read(path)
        except (OSError, yaml.YAMLError):
            continue  # `--collector-config FILE` names what is wrong with the file itself
        for where, env in places:
            findings += local_receivers(config, env, f"{path.name}: {where}")
    if not findings and mounts:
        findings.append(good(TOPIC, f"{folder.name}/: the receivers of the {len(mounts)} collector configs "
                                    "its compose files mount into containers are reachable from other containers"))
    return findings
