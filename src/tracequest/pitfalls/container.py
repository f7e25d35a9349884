"""Inside a container, localhost is the container itself.

Two mistakes come from forgetting it. An exporter in a container pointed at
``localhost:4317`` sends to its own container, where nothing listens (unless a
collector runs beside it as a sidecar); it must name the collector's container
instead (``http://collector:4317`` in compose/). And a collector in a container
whose receiver binds ``localhost`` (the Collector's default since 0.104) cannot be
reached from any other container; it must bind ``0.0.0.0``. Run natively, both are
right, so each finding first asks whether a container is involved.

Whether this process runs in a container is guessed from what runtimes leave
behind (``/.dockerenv``, ``/run/.containerenv``, a container cgroup in
``/proc/1/cgroup``, ``KUBERNETES_SERVICE_HOST``), read under ``root`` so tests can
point it at a folder of their own; ``TRACEQUEST_CONTAINER=1`` or ``=0`` overrides
the guess when it is wrong (say, a container on the host's network).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from tracequest.pitfalls.findings import Finding, bad

OVERRIDE = "TRACEQUEST_CONTAINER"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
MARKER_FILES = (".dockerenv", "run/.containerenv")
CGROUP_WORDS = ("docker", "kubepods", "containerd", "libpod", "lxc")
EXAMPLE_ENDPOINT = "http://collector:4317"  # the collector's service name in compose/


def detect(env: Mapping[str, str], root: Path = Path("/")) -> str:
    """Why this process looks like it runs in a container, or '' if it does not."""
    forced = env.get(OVERRIDE, "").strip().lower()
    if forced in ("1", "yes", "true"):
        return f"{OVERRIDE}={env[OVERRIDE].strip()}"
    if forced in ("0", "no", "false"):
        return ""
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "KUBERNETES_SERVICE_HOST is set (a Kubernetes pod)"
    for marker in MARKER_FILES:
        if (root / marker).exists():
            return f"/{marker} exists"
    try:
        cgroup = (root / "proc/1/cgroup").read_text()
    except OSError:
        return ""
    word = next((w for w in CGROUP_WORDS if w in cgroup), None)
    return f"/proc/1/cgroup names {word}" if word else ""


def is_local(host: str) -> bool:
    return host.strip().lower() in LOCAL_HOSTS


def localhost_in_container(settings, container: str) -> Finding:
    """The exporter sends to localhost from inside a container, and nothing listens there."""
    return bad("environment", "localhost-in-container",
               f"{settings.source} sends to {settings.host}:{settings.port}, but this process runs in a "
               f"container ({container}), where localhost is the container itself and nothing listens "
               f"on {settings.port}",
               f"name the collector's container instead, e.g. OTEL_EXPORTER_OTLP_ENDPOINT={EXAMPLE_ENDPOINT} "
               "(set TRACEQUEST_CONTAINER=0 if this is no container)")


# --- compose files and the collector configs they mount -----------------------------------

def compose_mounts(folders: list[Path]) -> dict[Path, list[tuple[str, dict]]]:
    """Collector configs that compose files in ``folders`` mount into a container.

    Answers {config path: [(where it is mounted, the container's environment)]}; a
    config is any mounted YAML file with a ``receivers:`` section.
    """
    mounts: dict[Path, list[tuple[str, dict]]] = {}
    for folder in folders:
        for compose in sorted([*Path(folder).glob("*.yaml"), *Path(folder).glob("*.yml")]):
            for service, body in _services(compose).items():
                for source in _bind_sources(body):
                    path = (compose.parent / source).resolve()
                    if _is_collector_config(path):
                        where = f"{compose.name} mounts it into the {service} container"
                        mounts.setdefault(path, []).append((where, _environment(body)))
    return mounts


def _services(compose: Path) -> dict:
    try:
        data = yaml.safe_load(compose.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    services = data.get("services") if isinstance(data, dict) else None
    return {name: body for name, body in (services or {}).items() if isinstance(body, dict)} \
        if isinstance(services, dict) else {}


def _bind_sources(service: dict) -> list[str]:
    """Host paths a service mounts: short syntax ``./a.yaml:/etc/a.yaml:ro`` and long syntax."""
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str) and ":" in volume and volume.startswith((".", "/", "~")):
            sources.append(volume.split(":", 1)[0])
        elif isinstance(volume, dict) and volume.get("type") == "bind" and volume.get("source"):
            sources.append(str(volume["source"]))
    return sources


def _environment(service: dict) -> dict:
    """A service's environment, from a mapping or a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if isinstance(item, str) and "=" in item)
    return {str(k): "" if v is None else str(v) for k, v in env.items()} if isinstance(env, dict) else {}


def _is_collector_config(path: Path) -> bool:
    if not path.is_file() or path.suffix not in (".yaml", ".yml"):
        return False
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and isinstance(data.get("receivers"), dict)
