"""A collector config read for the mistakes that lose spans without an error.

The collector starts happily with each of these: a receiver that binds
localhost (the default since 0.104) is unreachable from other containers;
memory_limiter only protects what comes after it; batching before
tail_sampling splits traces the sampler needs whole; and a pipeline that
names a component nobody defined refuses to start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from ..quests.collector_config import CollectorConfig, kind_of
from .findings import Finding, bad, good

TOPIC = "collector config"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def check_collector_config(path: Path, env: Mapping[str, str] | None = None) -> list[Finding]:
    env = os.environ if env is None else env
    try:
        config = CollectorConfig.read(Path(path))
    except (OSError, yaml.YAMLError) as exc:
        return [bad(TOPIC, "unreadable-config", f"{path} cannot be read: {exc}".splitlines()[0],
                    "fix the file (python -c 'import yaml,sys; yaml.safe_load(open(sys.argv[1]))' FILE)")]
    findings = _local_receivers(config, env) + _pipelines(config)
    if not findings:
        findings.append(good(TOPIC, f"{Path(path).name}: receivers reachable, pipelines in a sound order"))
    return findings


def _local_receivers(config: CollectorConfig, env: Mapping[str, str]) -> list[Finding]:
    findings = []
    for name, body in config.section("receivers").items():
        protocols = (body or {}).get("protocols") if kind_of(name) == "otlp" else None
        for protocol, settings in (protocols or {}).items():
            endpoint = CollectorConfig.resolve((settings or {}).get("endpoint") or "", env)
            host = endpoint.rsplit(":", 1)[0] if endpoint else ""
            if not endpoint or host in LOCAL_HOSTS:
                shown = f"endpoint {endpoint}" if endpoint else "no endpoint, so it binds localhost:<port>"
                findings.append(bad(TOPIC, "receiver-on-localhost",
                                    f"receiver {name} ({protocol}) has {shown}: other containers cannot reach it",
                                    f"set endpoint: 0.0.0.0:{4317 if protocol == 'grpc' else 4318}"))
    return findings


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
