"""Ports: the lab's defaults, free ports for tests, and who holds a busy port."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
from dataclasses import asdict, dataclass, fields

from services.common.knobs import HOST, knob
from tracequest.errors import TraceQuestError


def _default(field: str) -> int:
    """A port's default, from the knob table: field x_y is knob x-y-port."""
    return knob(f"{field.replace('_', '-')}-port").default


@dataclass
class Ports:
    """Every port the lab listens on; defaults come from the knob table (services/common/knobs.py)."""

    frontend: int = _default("frontend")
    customer: int = _default("customer")
    driver: int = _default("driver")
    route: int = _default("route")
    assistant: int = _default("assistant")
    model: int = _default("model")
    otlp_grpc: int = _default("otlp_grpc")
    otlp_http: int = _default("otlp_http")
    query: int = _default("query")
    # Used only by the real backends: Jaeger's own listeners, moved aside when
    # the collector takes 4317/4318, and the metrics endpoints.
    jaeger_otlp_grpc: int = _default("jaeger_otlp_grpc")
    jaeger_otlp_http: int = _default("jaeger_otlp_http")
    jaeger_query_grpc: int = _default("jaeger_query_grpc")
    jaeger_metrics: int = _default("jaeger_metrics")
    collector_metrics: int = _default("collector_metrics")
    collector_health: int = _default("collector_health")
    # Where traces also go (fan-out): Zipkin, and the metrics derived from spans.
    spanmetrics: int = _default("spanmetrics")
    zipkin: int = _default("zipkin")
    prometheus: int = _default("prometheus")

    @classmethod
    def free(cls) -> Ports:
        """All-new free ports, distinct, so a test never collides with a running lab."""
        chosen: list[int] = []
        for _ in fields(cls):
            chosen.append(free_port(avoid=set(chosen)))
        return cls(*chosen)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class PortInUse(TraceQuestError, OSError):
    pass


class CannotListen(TraceQuestError, OSError):
    """A server of the lab could not bind its address; the message names the server and why."""


def listen(host: str, port: int, what: str) -> socket.socket:
    """A listening socket on host:port (0: a free port), of the family the host resolves to.

    Bound before the server starts, so a taken port fails here with a sentence
    that names ``what`` wanted it, and the port is known before any request.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CannotListen(f"could not bind the {what} to {host}:{port} ({reason})") from None


# Listening ports are drawn below the kernel's ephemeral range: outgoing
# connections take their local ports from that range, and one of them could
# grab a port between our choosing it and a server binding it.
_LISTEN_RANGE_LOW = 20000


# Ports this process has handed out: two labs chosen at once (threads) would
# otherwise both see a port free and take it, and one lab's health check could
# then be answered by the other lab's program.
_handed_out: set[int] = set()
_handing_out = threading.Lock()


def free_port(avoid: set[int] = frozenset()) -> int:
    """A port nothing listens on and this process has not handed out, outside the ephemeral range where possible."""
    high = _ephemeral_low() - 1
    with _handing_out:
        for _ in range(200):
            port = random.randint(_LISTEN_RANGE_LOW, high) if high > _LISTEN_RANGE_LOW else 0
            if port and port not in avoid and port not in _handed_out and is_free(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:   # fall back to whatever the kernel offers
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152   # the IANA dynamic range, used by macOS and Windows


def is_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def check_free(named_ports: dict[str, int]) -> None:
    """Raise PortInUse naming the first busy port, its role and its holder."""
    for role, port in named_ports.items():
        if not is_free(port):
            holder = port_owner(port)
            who = f" by {holder}" if holder else ""
            raise PortInUse(
                f"port {port} ({role}) is already in use{who}. Stop that program, "
                "or run `tracequest down` if it is an earlier lab."
            )


def port_owner(port: int) -> str | None:
    """'process 1234 (python -m http.server)', or None when it cannot be told."""
    pid = _owner_from_proc(port)
    if pid is None:
        pid = _owner_from_lsof(port)
    if pid is None:
        return None
    return f"process {pid} ({_command_line(pid)})"


def _owner_from_proc(port: int) -> int | None:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    if not inodes:
        return None
    for pid in filter(str.isdigit, _listdir("/proc")):
        for fd in _listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return int(pid)
    return None


def _owner_from_lsof(port: int) -> int | None:
    try:
        out = subprocess.run(["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-t"],
                             capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out[0]) if out and out[0].isdigit() else None


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        try:
            return subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True,
                                  text=True, timeout=5).stdout.strip()[:120] or "unknown"
        except (OSError, subprocess.SubprocessError):
            return "unknown"


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
