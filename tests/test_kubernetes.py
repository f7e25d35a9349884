"""deploy/kubernetes: valid against the Kubernetes schemas, every reference resolves, and
the Collector and Jaeger configs it mounts load in the real programs.

No cluster runs here. What can be checked without one is checked against real
things: the JSON schemas of the Kubernetes API (the kubernetes-validate package
ships them), the real Collector and Jaeger binaries (``validate`` and
``print-config`` on the very files and arguments the pods get), and the real
kustomize inside kubectl when it is installed.

The ConfigMaps come from compose/ through kustomize's configMapGenerator, so
the native lab and the cluster run one set of files. ``assembled()`` reads the
kustomization the way kustomize does for the few fields it uses (and a test
keeps it to those fields); ``test_kustomize_renders_the_same_objects`` holds
that reading against kustomize itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.common import knobs
from tracequest.programs import collector, jaeger
from tracequest.quests.collector_config import CollectorConfig

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "compose"
NAMESPACE = "tracequest"
# The oldest Kubernetes a learner's kind or minikube is likely to run, and the newest
# the schema package knows; a manifest must be valid in both.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
SERVICES_IMAGE = "tracequest-services:dev"
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
CLUSTER_SCOPED = ("Namespace",)
# The kustomization fields assembled() understands; any other would make it lie.
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator"}
# The configs that must come from compose/, byte for byte: (ConfigMap, key) -> file.
SINGLE_SOURCE = {
    ("otel-agent-config", "agent-trace-id.yaml"): COMPOSE / "collector" / "agent-trace-id.yaml",
    ("otel-gateway-config", "gateway.yaml"): COMPOSE / "collector" / "gateway.yaml",
    ("jaeger-config", "config-badger.yaml"): COMPOSE / "jaeger" / "config-badger.yaml",
}
MIB = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}


# --- reading the kustomization ----------------------------------------------------------

def kustomization() -> dict:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def generated_files() -> list[tuple[str, str, Path]]:
    """(ConfigMap name, key, source file) for every file the configMapGenerator reads."""
    found = []
    for generator in kustomization().get("configMapGenerator", []):
        for entry in generator["files"]:
            key, _, source = entry.rpartition("=")
            found.append((generator["name"], key or Path(source).name, (DEPLOY / source).resolve()))
    return found


def assembled() -> list[dict]:
    """The objects `kubectl kustomize` makes, without the hash suffix on ConfigMap names."""
    spec = kustomization()
    objects = [doc for name in spec["resources"]
               for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    maps: dict[str, dict] = {}
    for name, key, source in generated_files():
        maps.setdefault(name, {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": name}, "data": {}})["data"][key] = source.read_text()
    objects += maps.values()
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def kustomize_command() -> list[str] | None:
    """Real kustomize: a kustomize binary, or the one built into kubectl."""
    if shutil.which("kustomize"):
        return [shutil.which("kustomize"), "build"]
    if shutil.which("kubectl"):
        return [shutil.which("kubectl"), "kustomize"]
    return None


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return assembled()


# --- looking things up --------------------------------------------------------------------

def of_kind(objects, kind) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def workloads(objects) -> list[dict]:
    return [obj for obj in objects if obj["kind"] in WORKLOADS]


def pod_spec(workload) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(objects):
    """(workload, container) for every container of every workload."""
    for workload in workloads(objects):
        for container in pod_spec(workload)["containers"]:
            yield workload, container


def container_named(objects, workload_name) -> dict:
    (container,) = [c for w, c in containers(objects) if w["metadata"]["name"] == workload_name]
    return container


def selected(objects, selector: dict) -> list[dict]:
    return [w for w in workloads(objects)
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]


def container_port(container, port) -> int | None:
    """A container port by name or number, as a Service's targetPort or a probe names it."""
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            return declared["containerPort"]
    return None


def literal_env(container) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", quantity).groups()
    return int(number) * MIB[unit]


def config_files(objects, workload, container, into: Path) -> list[str]:
    """The container's arguments with every mounted ConfigMap file written under ``into``."""
    maps = of_kind(objects, "ConfigMap")
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    args = list(container.get("args", []))
    for mount in container.get("volumeMounts", []):
        source = volumes[mount["name"]].get("configMap")
        if not source:
            continue
        folder = into / mount["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for key, text in maps[source["name"]]["data"].items():
            (folder / key).write_text(text)
        args = [arg.replace(mount["mountPath"] + "/", f"{folder}/") for arg in args]
    return args


# --- the checks, as functions both the assembled and the rendered objects go through ------

URL = re.compile(r"(?:https?://)?([a-z0-9-]+):(\d+)(?:/.*)?")


def reference_problems(objects) -> list[str]:
    """Every ConfigMap, volume, claim, Service, port and in-cluster address a manifest names exists."""
    problems = []
    maps, claims = of_kind(objects, "ConfigMap"), of_kind(objects, "PersistentVolumeClaim")
    services = of_kind(objects, "Service")
    namespaces = of_kind(objects, "Namespace")
    for obj in objects:
        where = f"{obj['kind']} {obj['metadata']['name']}"
        if obj["kind"] not in CLUSTER_SCOPED and obj["metadata"].get("namespace") not in namespaces:
            problems.append(f"{where}: namespace {obj['metadata'].get('namespace')!r} is not created")
    for workload in workloads(objects):
        where = f"{workload['kind']} {workload['metadata']['name']}"
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if not workload["spec"]["selector"]["matchLabels"].items() <= labels.items():
            problems.append(f"{where}: its selector does not match its own pods")
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                if name not in maps:
                    problems.append(f"{where}: no ConfigMap {name}")
                for item in volume["configMap"].get("items", []):
                    if item["key"] not in maps.get(name, {}).get("data", {}):
                        problems.append(f"{where}: ConfigMap {name} has no key {item['key']}")
            if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] not in claims:
                problems.append(f"{where}: no PersistentVolumeClaim {volume['persistentVolumeClaim']['claimName']}")
        for container in pod_spec(workload)["containers"]:
            mounts = container.get("volumeMounts", [])
            problems += [f"{where}: mount {m['name']} is no volume" for m in mounts if m["name"] not in volumes]
            # Every file an argument names is a key of a mounted ConfigMap.
            files = {f"{m['mountPath']}/{key}"
                     for m in mounts if "configMap" in volumes.get(m["name"], {})
                     for key in maps.get(volumes[m["name"]]["configMap"]["name"], {}).get("data", {})}
            for arg in container.get("args", []):
                if arg.startswith("/") or arg.startswith("--config="):
                    path = arg.removeprefix("--config=")
                    if path not in files:
                        problems.append(f"{where}: {arg} names no mounted ConfigMap file")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and container_port(container, port) is None:
                    problems.append(f"{where}: {probe} port {port} is no container port")
            defined = set()
            for env in container.get("env", []):
                value = env.get("value", "")
                for name in re.findall(r"\$\((\w+)\)", value):
                    if name not in defined:
                        problems.append(f"{where}: {env['name']} uses $({name}) before it is defined")
                defined.add(env["name"])
                match = URL.fullmatch(value)
                if match and match[1] not in ("localhost",):
                    host, port = match[1], int(match[2])
                    ports = [p["port"] for p in services.get(host, {}).get("spec", {}).get("ports", [])]
                    if host not in services:
                        problems.append(f"{where}: {env['name']}={value} names no Service")
                    elif port not in ports:
                        problems.append(f"{where}: {env['name']}={value}: Service {host} has no port {port}")
    for name, service in services.items():
        chosen = selected(objects, service["spec"]["selector"])
        if not chosen:
            problems.append(f"Service {name}: its selector matches no pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload in chosen:
                if not any(container_port(c, target) for c in pod_spec(workload)["containers"]):
                    problems.append(f"Service {name}: targetPort {target} is no port of "
                                    f"{workload['kind']} {workload['metadata']['name']}")
    return problems


# --- the tests -------------------------------------------------------------------------------

def test_configs_come_from_compose_not_from_copies():
    """One source: the ConfigMaps are made from compose/'s files, and deploy/ holds no copy of them."""
    assert set(kustomization()) <= KUSTOMIZATION_FIELDS, \
        "assembled() only understands these kustomization fields; teach it the new one"
    sources = {(name, key): path for name, key, path in generated_files()}
    for (name, key), path in SINGLE_SOURCE.items():
        assert sources.get((name, key)) == path.resolve(), f"{name}/{key} must be read from {path}"
    for name, key, path in generated_files():
        assert path.is_file(), f"{name}/{key}: {path} is missing"
        inside_deploy = path.is_relative_to(DEPLOY)
        assert inside_deploy or path.is_relative_to(COMPOSE), f"{path}: neither compose/ nor deploy/"
    compose_texts = {p.read_text() for p in COMPOSE.rglob("*.yaml")}
    copies = [p for p in DEPLOY.rglob("*.yaml") if p.read_text() in compose_texts]
    assert not copies, f"copies of compose/ files: {copies}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(objects, version):
    import kubernetes_validate

    failures = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{obj['kind']} {obj['metadata']['name']}: {error.message} "
                            f"at {'.'.join(map(str, error.path))}")
    assert not failures, "\n".join(failures)
    kinds = {obj["kind"] for obj in objects}
    assert {"Namespace", "Deployment", "DaemonSet", "Service", "ConfigMap",
            "PersistentVolumeClaim"} <= kinds


def test_every_reference_resolves(objects):
    assert reference_problems(objects) == []


def test_the_reference_check_catches_a_wrong_port():
    """The check above can fail: a typo in one Service's port is found."""
    broken = assembled()
    of_kind(broken, "Service")["route"]["spec"]["ports"][0]["targetPort"] = "htp"
    of_kind(broken, "Deployment")["frontend"]["spec"]["template"]["spec"]["containers"][0]["env"] \
        .append({"name": "TQ_ROUTE_URL", "value": "http://route:8086"})
    problems = reference_problems(broken)
    assert any("Service route: targetPort htp" in p for p in problems), problems
    assert any("http://route:8086: Service route has no port 8086" in p for p in problems), problems


def test_the_topology_has_its_shape(objects):
    """Agent on every node, two gateways behind a headless Service, one Jaeger on a volume."""
    deployments, services = of_kind(objects, "Deployment"), of_kind(objects, "Service")
    assert set(of_kind(objects, "DaemonSet")) == {"otel-agent"}
    assert deployments["otel-gateway"]["spec"]["replicas"] == 2
    assert services["otel-gateway"]["spec"]["clusterIP"] == "None"
    assert services["otel-agent"]["spec"]["internalTrafficPolicy"] == "Local"
    assert set(knobs.SERVICES) <= set(deployments) and set(knobs.SERVICES) <= set(services)
    # Badger: one process opens the folder, so one replica, and the old pod stops first.
    jaeger = deployments["jaeger"]["spec"]
    assert jaeger["replicas"] == 1 and jaeger["strategy"]["type"] == "Recreate"
    assert "jaeger-badger" in of_kind(objects, "PersistentVolumeClaim")
    badger = container_named(objects, "jaeger")
    assert literal_env(badger)["TQ_JAEGER_BADGER_DIR"] in [m["mountPath"] for m in badger["volumeMounts"]]


def test_images_are_the_ones_the_lab_pins(objects):
    for workload, container in containers(objects):
        name = workload["metadata"]["name"]
        if name in knobs.SERVICES:
            assert container["image"] == SERVICES_IMAGE
            assert container["imagePullPolicy"] == "IfNotPresent"  # loaded into the cluster, no registry
            assert container["command"][-3:] == [f"services.{name}", "--host", "0.0.0.0"]
        elif name == "jaeger":
            assert container["image"] == jaeger.JAEGER_IMAGE
        else:
            assert container["image"] == collector.COLLECTOR_IMAGE


def test_the_services_settings_are_known_knobs(objects):
    """A TQ_* name that is no knob stops a service; each one here is a knob its service reads."""
    for workload, container in containers(objects):
        name = workload["metadata"]["name"]
        env = literal_env(container)
        tq = {key: value for key, value in env.items() if key.startswith("TQ_")}
        knobs.check_env_names(tq)
        if name not in knobs.SERVICES:
            continue
        assert env["OTEL_SERVICE_NAME"] == name
        for key, value in tq.items():
            knob = knobs.knob(key)
            assert name in knob.readers, f"{name} does not read {key}"
            knob.parse(value)
        assert int(env[f"TQ_{name.upper()}_PORT"]) == container["ports"][0]["containerPort"]


def test_every_container_has_requests_and_limits(objects):
    for workload, container in containers(objects):
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(part, {})), \
                f"{workload['metadata']['name']}: {part} needs cpu and memory"
        assert mebibytes(resources["requests"]["memory"]) <= mebibytes(resources["limits"]["memory"])


def test_memory_limiter_refuses_before_the_container_limit(objects):
    """memory_limiter's limit sits below the container's, with room for the Go runtime."""
    maps = of_kind(objects, "ConfigMap")
    checked = 0
    for workload, container in containers(objects):
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for volume in volumes.values():
            for text in maps.get(volume.get("configMap", {}).get("name"), {}).get("data", {}).values():
                limiter = (yaml.safe_load(text).get("processors") or {}).get("memory_limiter")
                if limiter:
                    limit = mebibytes(container["resources"]["limits"]["memory"])
                    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
                    limit_mib = float(CollectorConfig.resolve(limiter["limit_mib"], env))
                    assert limit_mib <= 0.8 * limit, \
                        f"{workload['metadata']['name']}: limit_mib {limit_mib} vs {limit} MiB"
                    checked += 1
    assert checked == 2  # the agent and the gateway


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env={"PATH": os.environ.get("PATH", ""), **env},
                          capture_output=True, text=True, timeout=60)


def listening_ports(config: dict) -> set[int]:
    """Ports a printed Collector/Jaeger config listens on: 0.0.0.0:port endpoints and its metrics."""
    ports = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "endpoint" and isinstance(value, str):
                    match = re.fullmatch(r"(?:0\.0\.0\.0)?:(\d+)", value)
                    if match:
                        ports.add(int(match[1]))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({key: value for key, value in config.items() if key != "exporters"})
    for reader in config["service"]["telemetry"]["metrics"]["readers"]:
        ports.add(int(reader["pull"]["exporter"]["prometheus"]["port"]))
    return ports


def load_in(program: Path, objects, workload, container, tmp_path) -> dict:
    """Validate the pod's config with the pod's arguments and environment; the effective config."""
    args = config_files(objects, workload, container, tmp_path)
    env = literal_env(container)
    done = run([str(program), "validate", *args], env)
    assert done.returncode == 0, f"{workload['metadata']['name']}: {done.stderr[-3000:]}"
    printed = run([str(program), "print-config", *args], env)
    assert printed.returncode == 0, printed.stderr[-3000:]
    return yaml.safe_load(printed.stdout)


@pytest.mark.parametrize("name", ["otel-agent", "otel-gateway"])
def test_collector_configs_load_in_the_real_collector(objects, collector_bin, tmp_path, name):
    (workload,) = [w for w in workloads(objects) if w["metadata"]["name"] == name]
    container = container_named(objects, name)
    config = load_in(collector_bin, objects, workload, container, tmp_path)
    declared = {p["containerPort"] for p in container["ports"]}
    assert listening_ports(config) == declared
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["processors"][0] == "memory_limiter"
    if name == "otel-agent":
        # The merged resolver: DNS on the headless gateway Service, the native list gone.
        resolver = config["exporters"]["loadbalancing"]["resolver"]
        assert resolver["static"] is None
        gateway = of_kind(objects, "Service")[resolver["dns"]["hostname"]]
        assert gateway["spec"]["clusterIP"] == "None"
        assert int(resolver["dns"]["port"]) in [p["port"] for p in gateway["spec"]["ports"]]
    else:
        assert "tail_sampling" in pipeline["processors"]
        host, port = config["exporters"]["otlp/jaeger"]["endpoint"].split(":")
        assert int(port) in [p["port"] for p in of_kind(objects, "Service")[host]["spec"]["ports"]]


def test_the_agent_without_its_kubernetes_resolver_is_refused(objects, collector_bin, tmp_path):
    """The overlay is needed: with both resolvers the Collector refuses the config."""
    (workload,) = [w for w in workloads(objects) if w["metadata"]["name"] == "otel-agent"]
    args = config_files(objects, workload, container_named(objects, "otel-agent"), tmp_path)
    overlay = Path(args[1].removeprefix("--config="))
    overlay.write_text(overlay.read_text().replace("static: null", "static: {hostnames: [a:4317]}"))
    done = run([str(collector_bin), "validate", *args], {})
    assert done.returncode != 0 and "only one resolver" in done.stderr, done.stderr[-2000:]


def test_jaeger_config_loads_in_the_real_jaeger(objects, jaeger_bin, tmp_path):
    (workload,) = [w for w in workloads(objects) if w["metadata"]["name"] == "jaeger"]
    container = container_named(objects, "jaeger")
    config = load_in(jaeger_bin, objects, workload, container, tmp_path)
    assert listening_ports(config) == {p["containerPort"] for p in container["ports"]}
    badger = config["extensions"]["jaeger_storage"]["backends"]["badger_store"]["badger"]
    assert badger["directories"]["keys"].startswith("/badger/") and not badger["ephemeral"]


def test_kustomize_renders_the_same_objects(objects):
    """Real kustomize makes the objects assembled() made, with the compose files byte for byte."""
    command = kustomize_command()
    if command is None:
        message = ("kustomize is not installed: install kubectl (https://kubernetes.io/docs/tasks/tools/) "
                   "or kustomize to render deploy/kubernetes")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    refused = subprocess.run([*command, str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, "kustomize read compose/ without --load-restrictor: README is wrong"
    done = subprocess.run([*command, "--load-restrictor=LoadRestrictionsNone", str(DEPLOY)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert reference_problems(rendered) == []

    def unhashed(obj):
        name = obj["metadata"]["name"]
        return re.sub(r"-[a-z0-9]{10}$", "", name) if obj["kind"] == "ConfigMap" else name

    maps = {unhashed(obj): obj for obj in rendered if obj["kind"] == "ConfigMap"}
    for (name, key), path in SINGLE_SOURCE.items():
        assert maps[name]["data"][key] == path.read_text(), f"{name}/{key} differs from {path}"
    assert sorted((o["kind"], unhashed(o)) for o in rendered) == \
        sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    # Beyond the names, kustomize changed nothing assembled() did not.
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for obj in rendered:
        text = re.sub(r"(-config)-[a-z0-9]{10}\b", r"\1", yaml.safe_dump(obj, sort_keys=True))
        assert yaml.safe_load(text) == by_key[(obj["kind"], unhashed(obj))], f"{obj['kind']} {unhashed(obj)}"
