"""The trace exporter's settings, read from OTEL_* variables exactly as the SDK reads them.

The SDK's rules are easy to get wrong: the protocol defaults to gRPC; a
signal-specific endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is used as
written, while the base one (OTEL_EXPORTER_OTLP_ENDPOINT) gets ``/v1/traces``
appended for HTTP. ``ExporterSettings`` resolves them once, so each check
below says what the exporter will really do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tracequest.pitfalls.findings import Finding, bad, good

GRPC_PORT, HTTP_PORT = 4317, 4318
TRACES_PATH = "/v1/traces"
TOPIC = "environment"


@dataclass(frozen=True)
class ExporterSettings:
    protocol: str        # "grpc" or "http/protobuf" (or "http/json")
    endpoint: str        # the URL the exporter sends to, resolved
    source: str          # the variable it came from, or "the default"
    service_name: str    # "" when none is set

    @property
    def is_http(self) -> bool:
        return self.protocol.startswith("http")

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.endpoint)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def path(self) -> str:
        return urlsplit(self.endpoint).path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExporterSettings:
        protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip()
        http = protocol.startswith("http")
        if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            endpoint, source = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            base, source = env["OTEL_EXPORTER_OTLP_ENDPOINT"], "OTEL_EXPORTER_OTLP_ENDPOINT"
            endpoint = base.rstrip("/") + TRACES_PATH if http else base
        else:
            source = "the default"
            endpoint = f"http://localhost:{HTTP_PORT}{TRACES_PATH}" if http else f"http://localhost:{GRPC_PORT}"
        return cls(protocol, endpoint.strip(), source, service_name_of(env))


def service_name_of(env: Mapping[str, str]) -> str:
    """OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else ''."""
    if env.get("OTEL_SERVICE_NAME", "").strip():
        return env["OTEL_SERVICE_NAME"].strip()
    for pair in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = pair.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return ""


def check_environment(env: Mapping[str, str]) -> list[Finding]:
    """Protocol, port, path and service name, each a finding."""
    settings = ExporterSettings.from_env(env)
    findings = [_service_name(settings), *_protocol_and_port(settings), *_path(settings, env)]
    if all(f.ok for f in findings):
        findings.append(good(TOPIC, f"exporter sends {settings.protocol} to {settings.endpoint} "
                                    f"({settings.source})"))
    return findings


def _service_name(settings: ExporterSettings) -> Finding:
    if settings.service_name:
        return good(TOPIC, f"service name {settings.service_name!r}")
    return bad(TOPIC, "no-service-name", "no service name is set, so spans arrive as unknown_service",
               "export OTEL_SERVICE_NAME=<your service>")


def _protocol_and_port(settings: ExporterSettings) -> list[Finding]:
    if settings.protocol not in ("grpc", "http/protobuf", "http/json"):
        return [bad(TOPIC, "unknown-protocol", f"OTEL_EXPORTER_OTLP_PROTOCOL={settings.protocol!r} is "
                    "not a protocol the SDK knows", "use grpc or http/protobuf")]
    if settings.is_http and settings.port == GRPC_PORT:
        return [bad(TOPIC, "http-to-grpc-port", f"{settings.protocol} goes to port {GRPC_PORT}, "
                    "the OTLP/gRPC port", f"use port {HTTP_PORT} for http/protobuf, "
                    f"or set OTEL_EXPORTER_OTLP_PROTOCOL=grpc")]
    if not settings.is_http and settings.port == HTTP_PORT:
        return [bad(TOPIC, "grpc-to-http-port", f"gRPC (the default protocol) goes to port {HTTP_PORT}, "
                    "the OTLP/HTTP port", f"use port {GRPC_PORT} for gRPC, "
                    "or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")]
    return []


def _path(settings: ExporterSettings, env: Mapping[str, str]) -> list[Finding]:
    if not settings.is_http:
        return []
    if settings.source == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" and not settings.path.endswith(TRACES_PATH):
        return [bad(TOPIC, "traces-endpoint-without-path",
                    f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={settings.endpoint} is used as written, so spans "
                    f"go to {settings.path or '/'}", f"end it with {TRACES_PATH}, or set "
                    "OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends the path to that one)")]
    if settings.source == "OTEL_EXPORTER_OTLP_ENDPOINT" \
            and settings.path.endswith(TRACES_PATH + TRACES_PATH):
        return [bad(TOPIC, "endpoint-with-path",
                    f"OTEL_EXPORTER_OTLP_ENDPOINT={env['OTEL_EXPORTER_OTLP_ENDPOINT']} already ends in "
                    f"{TRACES_PATH} and the SDK appends it again", f"remove {TRACES_PATH} from it")]
    return []
