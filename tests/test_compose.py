"""The files in compose/ are valid, consistent, and load in the real binary.

Docker is not needed: the compose files are checked against the Compose
Specification schema and against each other, and every collector/Jaeger
config is loaded (and run) by the natively built Jaeger binary, which is an
OpenTelemetry Collector distribution.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tracequest import binaries
from tracequest.binaries import (
    COLLECTOR_IMAGE,
    JAEGER_IMAGE,
    NATIVE_COLLECTOR_ENV,
    NATIVE_JAEGER_ENV,
    collector_env,
    jaeger_env,
)
from tracequest.ports import Ports

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"

COMPOSE_FILES = sorted(p.name for p in COMPOSE.glob("*.yaml"))
JAEGER_CONFIG = COMPOSE / "jaeger" / "config.yaml"
COLLECTOR_CONFIGS = sorted(p.name for p in (COMPOSE / "collector").glob("*.yaml"))
ALL_CONFIGS = ["jaeger/config.yaml"] + [f"collector/{n}" for n in COLLECTOR_CONFIGS]
# Variables the configs may read: the documented native layouts, plus one knob.
DOCUMENTED_VARS = set(NATIVE_JAEGER_ENV) | set(NATIVE_COLLECTOR_ENV) | {"TQ_TAIL_DECISION_WAIT"}
ENV_REF = re.compile(r"\$\{env:([A-Za-z0-9_]+)(?::-([^}]*))?\}")
# The contrib image is built FROM scratch: no shell, no wget, no curl.
NO_SHELL_IMAGES = ("otel/opentelemetry-collector-contrib",)


def load_compose(name: str) -> dict:
    return yaml.safe_load((COMPOSE / name).read_text())


def load_config(rel: str) -> dict:
    return yaml.safe_load((COMPOSE / rel).read_text())


def expand(text: str, env: dict[str, str] | None = None) -> str:
    """Resolve ${env:VAR:-default} the way the collector does, from env or defaults."""
    env = env or {}
    return ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text)


def listening_ports(service: dict) -> set[str]:
    """Container-side ports a compose service declares (expose and ports)."""
    ports = {str(p) for p in service.get("expose", [])}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(str(entry["target"]))
        else:
            ports.add(str(entry).rsplit(":", 1)[-1].split("/")[0])
    return ports


def mounted_configs(compose: dict) -> list[Path]:
    """Host paths of every bind mount, resolved relative to compose/."""
    paths = []
    for service in compose["services"].values():
        for vol in service.get("volumes", []):
            source = vol["source"] if isinstance(vol, dict) else vol.split(":", 1)[0]
            if source.startswith((".", "/")):
                paths.append((COMPOSE / source).resolve())
    return paths


# ----------------------------------------------------------------- compose files

def test_compose_variants_present():
    assert set(COMPOSE_FILES) >= {"jaeger.yaml", "collector.yaml",
                                  "tail-sampling.yaml", "pii.yaml"}


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_matches_the_compose_specification(name):
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(load_compose(name)),
                    key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_mounted_files_and_build_inputs_exist(name):
    compose = load_compose(name)
    for path in mounted_configs(compose):
        assert path.is_file(), f"{name} mounts {path}, which does not exist"
    for svc, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (COMPOSE / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), svc
            assert (context / "pyproject.toml").is_file(), svc


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_otlp_endpoints_name_a_service_and_port_of_the_same_file(name):
    compose = load_compose(name)
    services = compose["services"]
    targets = []
    for svc, service in services.items():
        env = service.get("environment", {})
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            targets.append((svc, env["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        if "TQ_JAEGER_OTLP_ENDPOINT" in env:
            targets.append((svc, env["TQ_JAEGER_OTLP_ENDPOINT"]))
    # The collector config's own default must also point into this file.
    for path in mounted_configs(compose):
        for var, default in ENV_REF.findall(path.read_text()):
            if var == "TQ_JAEGER_OTLP_ENDPOINT":
                targets.append((path.name, default))
    assert targets, f"{name} configures no OTLP endpoint"
    for source, endpoint in targets:
        host, port = re.sub(r"^\w+://", "", endpoint).rstrip("/").rsplit(":", 1)
        assert host in services, f"{source} in {name} sends to unknown service {host!r}"
        assert port in listening_ports(services[host]), (
            f"{source} in {name} sends to {host}:{port}, but {host} declares "
            f"only {sorted(listening_ports(services[host]))}")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_published_ports_are_bound_to_localhost(name):
    for svc, service in load_compose(name)["services"].items():
        for entry in service.get("ports", []):
            if isinstance(entry, dict):
                assert entry.get("host_ip") == "127.0.0.1", (svc, entry)
            else:
                assert str(entry).startswith("127.0.0.1:"), (svc, entry)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_service_is_health_checked(name):
    for svc, service in load_compose(name)["services"].items():
        if service.get("image", "").startswith(NO_SHELL_IMAGES):
            continue  # nothing inside the container could run a probe
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{svc} in {name} has no healthcheck"
        assert any("/health" in part or "/api/v3/services" in part for part in test), test


# Upstream image name (without tag) -> the one tag the tests ran.
UPSTREAM_IMAGES = {image.rsplit(":", 1)[0]: image for image in (JAEGER_IMAGE, COLLECTOR_IMAGE)}


def test_pinned_images_are_the_versions_the_native_build_runs():
    assert JAEGER_IMAGE == f"jaegertracing/jaeger:{binaries.JAEGER_VERSION}"
    assert COLLECTOR_IMAGE == f"otel/opentelemetry-collector-contrib:{binaries.COLLECTOR_VERSION}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_upstream_images_are_exactly_the_tested_versions(name):
    """What Docker runs is what the tests run: a drifted tag fails here."""
    services = load_compose(name)["services"]
    images = {svc: service.get("image", "") for svc, service in services.items()}
    assert images["jaeger"] == JAEGER_IMAGE, (name, images["jaeger"])
    if "collector" in images:
        assert images["collector"] == COLLECTOR_IMAGE, (name, images["collector"])
    for svc, image in images.items():
        if "build" in services[svc]:
            continue   # built from compose/Dockerfile, not pulled
        # Any pulled image must be one of the pinned upstreams, at its pinned tag.
        pinned = UPSTREAM_IMAGES.get(image.rsplit(":", 1)[0])
        assert pinned, f"{name}: {svc} pulls {image}, which no constant in binaries.py pins"
        assert image == pinned, f"{name}: {svc} pulls {image}, but the tests ran {pinned}"


def test_readme_names_the_pinned_images_and_no_other_tag():
    readme = (COMPOSE / "README.md").read_text()
    for image in UPSTREAM_IMAGES.values():
        assert f"`{image}`" in readme, image
    for repo, image in UPSTREAM_IMAGES.items():
        tags = set(re.findall(re.escape(repo) + r":[\w.-]+", readme))
        assert tags == {image}, f"compose/README.md names {sorted(tags)}"


def test_native_env_is_the_labs_default_ports():
    ports = Ports()
    assert NATIVE_JAEGER_ENV == jaeger_env(ports)
    assert NATIVE_COLLECTOR_ENV == collector_env(ports)
    assert NATIVE_COLLECTOR_ENV["TQ_COLLECTOR_OTLP_GRPC_PORT"] == str(ports.otlp_grpc)
    assert NATIVE_JAEGER_ENV["TQ_JAEGER_QUERY_HTTP_PORT"] == str(ports.query)
    # Behind the collector, Jaeger's OTLP listens where the collector sends.
    assert NATIVE_COLLECTOR_ENV["TQ_JAEGER_OTLP_ENDPOINT"].endswith(
        ":" + NATIVE_JAEGER_ENV["TQ_JAEGER_OTLP_GRPC_PORT"])
    used = [int(v) for env in (NATIVE_JAEGER_ENV, NATIVE_COLLECTOR_ENV)
            for k, v in env.items() if k.endswith("_PORT")]
    assert len(used) == len(set(used)), f"two native listeners share a port: {sorted(used)}"


def test_jaeger_alone_takes_the_labs_otlp_ports():
    ports = Ports.free()
    env = jaeger_env(ports, behind_collector=False)
    assert env["TQ_JAEGER_OTLP_GRPC_PORT"] == str(ports.otlp_grpc)
    assert env["TQ_JAEGER_OTLP_HTTP_PORT"] == str(ports.otlp_http)
    assert env["TQ_JAEGER_QUERY_HTTP_PORT"] == str(ports.query)


def test_readme_native_column_matches_the_native_env():
    """compose/README.md's table shows the values the lab really uses."""
    readme = (COMPOSE / "README.md").read_text()
    # | `VAR` | read by | container default | `native` |
    native = dict(re.findall(r"^\| `(TQ_\w+)` \|[^|]*\|[^|]*\| `([^`]*)`", readme, re.M))
    for var, value in {**NATIVE_JAEGER_ENV, **NATIVE_COLLECTOR_ENV}.items():
        assert native.get(var) == value, (
            f"compose/README.md says {var}={native.get(var)}, the lab uses {value}")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_images_are_pinned_and_services_listen_on_all_interfaces(name):
    for svc, service in load_compose(name)["services"].items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), (svc, image)
        if "build" in service:
            command = service["command"]
            assert command[:3] == ["opentelemetry-instrument", "python", "-m"], command
            assert command[3] == f"services.{svc}", command
            assert command[-2:] == ["--host", "0.0.0.0"], command
            assert service["environment"]["OTEL_SERVICE_NAME"] == svc


# ------------------------------------------------------------ collector configs

@pytest.mark.parametrize("rel", ALL_CONFIGS)
def test_pipelines_name_only_defined_components(rel):
    config = load_config(rel)
    defined = {kind: set(config.get(kind) or {}) for kind in
               ("receivers", "processors", "exporters", "connectors", "extensions")}
    connectors = defined["connectors"]
    service = config["service"]
    for ext in service.get("extensions", []):
        assert ext in defined["extensions"], f"{rel}: extension {ext} is not defined"
    for pipeline, spec in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            allowed = defined[kind] | (connectors if kind != "processors" else set())
            for comp in spec.get(kind, []):
                assert comp in allowed, f"{rel}: {pipeline} uses undefined {kind[:-1]} {comp}"


@pytest.mark.parametrize("rel", [f"collector/{n}" for n in COLLECTOR_CONFIGS])
def test_collector_pipelines_start_with_memory_limiter_and_end_with_batch(rel):
    for pipeline, spec in load_config(rel)["service"]["pipelines"].items():
        procs = spec["processors"]
        assert procs[0] == "memory_limiter", (pipeline, procs)
        assert procs[-1] == "batch", (pipeline, procs)
        assert "debug" in spec["exporters"], (pipeline, spec["exporters"])


# Component types that exist under the same name in the natively built Jaeger
# and in the contrib image (health-check extensions do not; nor, from collector
# 0.144 on, the `otlp` exporter's new name `otlp_grpc`).
PORTABLE_TYPES = {"otlp", "otlphttp", "memory_limiter", "batch", "tail_sampling",
                  "attributes", "filter", "debug", "spanmetrics"}


@pytest.mark.parametrize("rel", [f"collector/{n}" for n in COLLECTOR_CONFIGS])
def test_collector_configs_use_only_portable_component_types(rel):
    config = load_config(rel)
    for kind in ("receivers", "processors", "exporters", "connectors", "extensions"):
        for comp in config.get(kind) or {}:
            assert comp.split("/")[0] in PORTABLE_TYPES, f"{rel}: {kind} {comp}"


@pytest.mark.parametrize("rel", ALL_CONFIGS)
def test_addresses_come_from_documented_env_vars_with_container_defaults(rel):
    text = (COMPOSE / rel).read_text()
    used = {var for var, _ in ENV_REF.findall(text)}
    assert used <= DOCUMENTED_VARS, f"{rel} reads undocumented {used - DOCUMENTED_VARS}"
    readme = (COMPOSE / "README.md").read_text()
    for var in used:
        assert f"`{var}`" in readme, f"{var} is not in compose/README.md"
    expanded = yaml.safe_load(expand(text))
    for name, receiver in expanded["receivers"].items():
        for proto in (receiver.get("protocols") or {}).values():
            assert proto["endpoint"].startswith("0.0.0.0:"), (rel, name, proto)
    # Nothing listens on a hard-coded address: every endpoint is an env reference.
    for line in text.splitlines():
        if re.match(r"\s*endpoint:", line):
            assert "${env:" in line, f"{rel}: hard-coded {line.strip()}"


def test_tail_sampling_keeps_errors_slow_traces_and_ten_percent():
    config = load_config("collector/tail-sampling.yaml")
    policies = {p["type"]: p for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] == 500
    assert policies["probabilistic"]["probabilistic"]["sampling_percentage"] == 10
    assert len(policies) == 3


def test_pii_config_scrubs_email_and_authorization():
    actions = load_config("collector/pii.yaml")["processors"]["attributes/pii"]["actions"]
    by_key = {a["key"]: a["action"] for a in actions if "key" in a}
    assert by_key["user.email"] in ("hash", "delete")
    assert by_key["http.request.header.authorization"] == "delete"


# ------------------------------------------------------ the real binary (native)
# Running these configs end to end is tests/test_real_backends.py's job.

@pytest.mark.parametrize("rel", ALL_CONFIGS)
def test_config_validates_in_the_real_binary(jaeger_bin, rel):
    env = {**os.environ, **NATIVE_JAEGER_ENV, **NATIVE_COLLECTOR_ENV}
    proc = subprocess.run([str(jaeger_bin), "validate", "--config", str(COMPOSE / rel)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_validate_rejects_a_broken_config(jaeger_bin, tmp_path):
    """Guards the test above: `validate` must really read the component settings."""
    broken = tmp_path / "broken.yaml"
    broken.write_text((COMPOSE / "collector/tail-sampling.yaml").read_text()
                      .replace("threshold_ms:", "threshold_msec:"))
    proc = subprocess.run([str(jaeger_bin), "validate", "--config", str(broken)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "threshold_msec" in proc.stderr
