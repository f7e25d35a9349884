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

from tracequest.programs import collector, jaeger
from tracequest.programs.collector import COLLECTOR_IMAGE, NATIVE_COLLECTOR_ENV, collector_env
from tracequest.programs.jaeger import JAEGER_IMAGE, NATIVE_JAEGER_ENV, jaeger_env
from tracequest.programs.images import CASSANDRA_IMAGE, ELASTICSEARCH_IMAGE, PULLED_IMAGES
from tracequest.host.ports import Ports
from tracequest.lab.topology import GATEWAY_ENDPOINT_VARS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"

COMPOSE_FILES = sorted(p.name for p in COMPOSE.glob("*.yaml"))
JAEGER_CONFIG = COMPOSE / "jaeger" / "config.yaml"
COLLECTOR_CONFIGS = sorted(p.name for p in (COMPOSE / "collector").glob("*.yaml"))
# config.yaml (in memory) and its storage variants, config-<storage>.yaml.
JAEGER_CONFIGS = sorted(p.name for p in (COMPOSE / "jaeger").glob("*.yaml"))
STORAGE_CONFIGS = [n for n in JAEGER_CONFIGS if n != "config.yaml"]
ALL_CONFIGS = [f"jaeger/{n}" for n in JAEGER_CONFIGS] + [f"collector/{n}" for n in COLLECTOR_CONFIGS]
# Where the storage variants find their store: host:port or URL, by variable.
STORAGE_VARS = {"TQ_JAEGER_BADGER_DIR", "TQ_ELASTICSEARCH_URL", "TQ_CASSANDRA_ENDPOINT"}
# Variables the configs may read: the documented native layouts, the stores, plus one knob.
DOCUMENTED_VARS = (set(NATIVE_JAEGER_ENV) | set(NATIVE_COLLECTOR_ENV) | STORAGE_VARS
                   | {"TQ_TAIL_DECISION_WAIT"} | set(GATEWAY_ENDPOINT_VARS)
                   | {"TQ_GATEWAY_MEMORY_LIMIT_MIB", "TQ_GATEWAY_MEMORY_SPIKE_MIB"})
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
    assert set(COMPOSE_FILES) >= {"jaeger.yaml", "collector.yaml", "tail-sampling.yaml",
                                  "pii.yaml", "elasticsearch.yaml", "cassandra.yaml"}


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
        if service.get("image") == CASSANDRA_IMAGE:   # no HTTP: ready when CQL answers
            assert test[:2] == ["CMD", "cqlsh"], test
            continue
        assert any(path in part for part in test
                   for path in ("/health", "/api/v3/services", "/-/ready")), test


# Upstream image name (without tag) -> the one tag the tests ran (or upstream ran with it).
UPSTREAM_IMAGES = {image.rsplit(":", 1)[0]: image for image in PULLED_IMAGES}


def test_pinned_images_are_the_versions_the_native_build_runs():
    assert JAEGER_IMAGE == f"jaegertracing/jaeger:{jaeger.JAEGER_VERSION}"
    assert COLLECTOR_IMAGE == f"otel/opentelemetry-collector-contrib:{collector.COLLECTOR_VERSION}"


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
        assert pinned, f"{name}: {svc} pulls {image}, which no constant in images.py pins"
        assert image == pinned, f"{name}: {svc} pulls {image}, but the tests ran {pinned}"


def test_readme_names_the_pinned_images_and_no_other_tag():
    readme = (COMPOSE / "README.md").read_text()
    for image in UPSTREAM_IMAGES.values():
        assert f"`{image}`" in readme, image
    for repo, image in UPSTREAM_IMAGES.items():
        # repo:1.2.3, not a host:port such as cassandra:9042
        tag = r":(?:\d+\.[\w.-]*\w|[A-Za-z][\w.-]*)"
        tags = set(re.findall(r"(?<![\w/.-])" + re.escape(repo) + tag, readme))
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
        if not any(r.split("/")[0] == "otlp" for r in spec["receivers"]):
            continue   # fed by a connector inside the collector: its data passed the limiter already
        procs = spec["processors"]
        assert procs[0] == "memory_limiter", (pipeline, procs)
        assert procs[-1] == "batch", (pipeline, procs)
        assert "debug" in spec["exporters"], (pipeline, spec["exporters"])


# Component types the lab's Collector build carries (collector.COLLECTOR_COMPONENTS),
# by their names and the older names they still answer to; the contrib image of
# the same release carries all of them too.
LAB_COLLECTOR_TYPES = {"otlp", "otlp_grpc", "otlphttp", "otlp_http", "memory_limiter", "batch",
                       "tail_sampling", "attributes", "filter", "transform", "redaction", "debug",
                       "zipkin", "prometheus", "loadbalancing", "load_balancing", "spanmetrics",
                       "span_metrics", "health_check"}


@pytest.mark.parametrize("rel", [f"collector/{n}" for n in COLLECTOR_CONFIGS])
def test_collector_configs_use_only_components_of_the_lab_collector(rel):
    config = load_config(rel)
    for kind in ("receivers", "processors", "exporters", "connectors", "extensions"):
        for comp in config.get(kind) or {}:
            assert comp.split("/")[0] in LAB_COLLECTOR_TYPES, f"{rel}: {kind} {comp}"


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
def test_config_validates_in_the_real_binary(request, rel):
    """Jaeger's configs in Jaeger, the collector pipelines in the lab's Collector."""
    binary = request.getfixturevalue("jaeger_bin" if rel.startswith("jaeger/") else "collector_bin")
    env = {**os.environ, **NATIVE_JAEGER_ENV, **NATIVE_COLLECTOR_ENV}
    proc = subprocess.run([str(binary), "validate", "--config", str(COMPOSE / rel)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_validate_rejects_a_broken_config(collector_bin, tmp_path):
    """Guards the test above: `validate` must really read the component settings."""
    broken = tmp_path / "broken.yaml"
    broken.write_text((COMPOSE / "collector/tail-sampling.yaml").read_text()
                      .replace("threshold_ms:", "threshold_msec:"))
    proc = subprocess.run([str(collector_bin), "validate", "--config", str(broken)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "threshold_msec" in proc.stderr


def test_validate_reads_the_storage_settings(jaeger_bin, tmp_path):
    """Guards the storage configs: a misspelt Cassandra key must not pass."""
    broken = tmp_path / "broken.yaml"
    broken.write_text((COMPOSE / "jaeger/config-cassandra.yaml").read_text()
                      .replace("create: true", "create_schema: true"))
    proc = subprocess.run([str(jaeger_bin), "validate", "--config", str(broken)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "create_schema" in proc.stderr


# -------------------------------------------------------------- storage variants
# Badger runs natively (tests/test_jaeger_storage.py restarts it); Elasticsearch
# and Cassandra only in Docker, so here they are checked statically and by
# `jaeger validate` above.

def without_storage(config: dict) -> tuple[dict, dict, str, str]:
    """A Jaeger config minus its storage: (the rest, backends, query's store, exporter's store)."""
    config = json.loads(json.dumps(config))   # a deep copy
    backends = config["extensions"]["jaeger_storage"].pop("backends")
    query_store = config["extensions"]["jaeger_query"]["storage"].pop("traces")
    exporter_store = config["exporters"]["jaeger_storage_exporter"].pop("trace_storage")
    return config, backends, query_store, exporter_store


def test_storage_variants_exist():
    assert STORAGE_CONFIGS == ["config-badger.yaml", "config-cassandra.yaml",
                               "config-elasticsearch.yaml"]


@pytest.mark.parametrize("name", STORAGE_CONFIGS)
def test_storage_variant_is_config_yaml_with_only_the_storage_swapped(name):
    """Listeners, telemetry and the Monitor stay config.yaml's: edit one, the test asks for all."""
    base, base_backends, _, _ = without_storage(load_config("jaeger/config.yaml"))
    variant, backends, query_store, exporter_store = without_storage(load_config(f"jaeger/{name}"))
    assert variant == base, f"{name} differs from config.yaml in more than its storage"
    assert query_store == exporter_store and list(backends) == [query_store]
    kind = name.removeprefix("config-").removesuffix(".yaml")
    assert list(backends[query_store]) == [kind]
    assert list(base_backends.values()) == [{"memory": {"max_traces": 100000}}]


def test_badger_writes_under_its_folder_and_keeps_what_it_wrote():
    text = (COMPOSE / "jaeger/config-badger.yaml").read_text()
    (store,) = yaml.safe_load(expand(text, {"TQ_JAEGER_BADGER_DIR": "/lab/badger"})
                              )["extensions"]["jaeger_storage"]["backends"].values()
    badger = store["badger"]
    assert badger["ephemeral"] is False     # true (the default) forgets everything on exit
    assert badger["directories"] == {"keys": "/lab/badger/keys", "values": "/lab/badger/data"}
    assert badger["ttl"]["spans"] == "168h"


def test_cassandra_schema_is_created_by_jaeger():
    (store,) = load_config("jaeger/config-cassandra.yaml")["extensions"]["jaeger_storage"][
        "backends"].values()
    schema = store["cassandra"]["schema"]
    assert schema["create"] is True and schema["replication_factor"] == 1
    assert re.fullmatch(r"[a-z_]+", schema["keyspace"])


# compose file -> (the store's service, its image, Jaeger's config, the store's data folder)
STORES = {
    "elasticsearch.yaml": ("elasticsearch", ELASTICSEARCH_IMAGE, "jaeger/config-elasticsearch.yaml",
                           "/usr/share/elasticsearch/data"),
    "cassandra.yaml": ("cassandra", CASSANDRA_IMAGE, "jaeger/config-cassandra.yaml",
                       "/var/lib/cassandra"),
}
STORE_ADDRESS = re.compile(r"\$\{env:(TQ_ELASTICSEARCH_URL|TQ_CASSANDRA_ENDPOINT):-([^}]*)\}")


@pytest.mark.parametrize("name", sorted(STORES))
def test_storage_variant_keeps_spans_in_a_named_volume(name):
    store, image, config, data_dir = STORES[name]
    compose = load_compose(name)
    services = compose["services"]
    assert services[store]["image"] == image
    (mount,) = services[store]["volumes"]
    volume, target = mount.split(":")[:2]
    # A named volume outlives `docker compose down`; only `down -v` deletes it.
    assert target == data_dir and volume in compose.get("volumes", {}), mount
    assert (COMPOSE / config).resolve() in mounted_configs(compose)
    assert services["jaeger"]["depends_on"] == {store: {"condition": "service_healthy"}}
    # The address Jaeger's config uses by default is that service, on a port it declares.
    ((_, address),) = STORE_ADDRESS.findall((COMPOSE / config).read_text())
    host, port = re.sub(r"^\w+://", "", address).rsplit(":", 1)
    assert host == store and port in listening_ports(services[store]), address


# ------------------------------------------------------- `docker compose up` in the root

ROOT_COMPOSE = ROOT / "compose.yaml"


def test_root_compose_file_matches_the_compose_specification():
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    root = yaml.safe_load(ROOT_COMPOSE.read_text())
    assert not list(validator.iter_errors(root))


def test_docker_compose_up_in_the_root_starts_the_default_variant():
    """What `include:` does: the included file's services, its paths resolved from compose/."""
    root = yaml.safe_load(ROOT_COMPOSE.read_text())
    assert set(root) == {"name", "include"}   # nothing defined here that could drift
    assert root["name"] == load_compose("jaeger.yaml")["name"] == "tracequest"
    (entry,) = root["include"]
    path = entry if isinstance(entry, str) else entry["path"]
    # No project_directory: relative paths stay relative to the included file's folder.
    assert isinstance(entry, str) or "project_directory" not in entry
    assert (ROOT / path).resolve() == COMPOSE / "jaeger.yaml"


def test_readme_gives_every_variant_its_command():
    readme = (COMPOSE / "README.md").read_text()
    assert "`docker compose up -d --build`" in readme    # the root file, no flag
    for name in COMPOSE_FILES:
        assert f"`docker compose -f compose/{name} up -d --build`" in readme, name
    assert "compose/README.md" in (ROOT / "README.md").read_text()
