"""The OpenTelemetry packages an interpreter has, and whether they belong together.

Each opentelemetry-* distribution pins the others it needs (instrumentation
0.66b1 wants api 1.45.1, the SDK wants semantic-conventions 0.66b1, ...). pip
installs a mismatched set when one package is upgraded alone, and then an
instrumentation may fail to load without a word. The pins are read from the
packages' own metadata, so no version table lives here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tracequest.pitfalls.findings import Finding, bad, good

TOPIC = "packages"

# Libraries the lab's programs use, and the instrumentation each needs.
INSTRUMENTED_LIBRARIES = {
    "flask": "opentelemetry-instrumentation-flask",
    "requests": "opentelemetry-instrumentation-requests",
    "django": "opentelemetry-instrumentation-django",
    "fastapi": "opentelemetry-instrumentation-fastapi",
    "httpx": "opentelemetry-instrumentation-httpx",
    "aiohttp": "opentelemetry-instrumentation-aiohttp-client",
    "redis": "opentelemetry-instrumentation-redis",
    "sqlalchemy": "opentelemetry-instrumentation-sqlalchemy",
    "psycopg2": "opentelemetry-instrumentation-psycopg2",
    "celery": "opentelemetry-instrumentation-celery",
}

# Run in the interpreter under examination: its distributions, with their requirements.
_LIST = ("import importlib.metadata as m, json\n"
         "print(json.dumps([[d.metadata['Name'], d.version, d.requires or []] for d in m.distributions()]))")


@dataclass(frozen=True)
class Distribution:
    name: str      # canonical: opentelemetry-sdk
    version: str
    requires: tuple[str, ...]


def installed(python: str | None = None) -> dict[str, Distribution]:
    """The distributions ``python`` (default: this interpreter) can import, by canonical name."""
    # -I: only what the interpreter itself has, not the current folder or PYTHONPATH.
    answer = subprocess.run([python or sys.executable, "-I", "-c", _LIST], capture_output=True, text=True,
                            timeout=60, check=True)
    found: dict[str, Distribution] = {}
    for name, version, requires in json.loads(answer.stdout):
        if name:
            found.setdefault(canonicalize_name(name), Distribution(canonicalize_name(name), version,
                                                                   tuple(requires)))
    return found


def check_packages(python: str | None = None) -> list[Finding]:
    dists = installed(python)
    if "opentelemetry-sdk" not in dists:
        return [bad(TOPIC, "no-sdk", "opentelemetry-sdk is not installed, so nothing records spans",
                    "pip install opentelemetry-sdk opentelemetry-exporter-otlp")]
    findings = _mismatches(dists) + _missing_instrumentations(dists)
    if not findings:
        otel = sum(1 for name in dists if name.startswith("opentelemetry-"))
        findings.append(good(TOPIC, f"{otel} OpenTelemetry packages that belong together "
                                    f"(sdk {dists['opentelemetry-sdk'].version})"))
    return findings


def _mismatches(dists: dict[str, Distribution]) -> list[Finding]:
    """Each opentelemetry-* pin on another opentelemetry-* package that the installed version breaks."""
    findings = []
    for dist in sorted(dists.values(), key=lambda d: d.name):
        if not dist.name.startswith("opentelemetry-"):
            continue
        for text in dist.requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            wanted = canonicalize_name(req.name)
            if not wanted.startswith("opentelemetry-") or wanted not in dists or \
                    (req.marker and not req.marker.evaluate({"extra": ""})):
                continue
            have = dists[wanted].version
            try:
                fits = req.specifier.contains(Version(have), prereleases=True)
            except InvalidVersion:
                continue
            if not fits:
                findings.append(bad(TOPIC, "version-mismatch",
                                    f"{dist.name} {dist.version} needs {wanted}{req.specifier}, "
                                    f"but {wanted} {have} is installed",
                                    f"install versions made for each other: pip install "
                                    f"'{wanted}{req.specifier}' (or the {dist.name} release for "
                                    f"{wanted} {have})"))
    return findings


def _requirement_name(text: str) -> str:
    try:
        return Requirement(text).name
    except InvalidRequirement:
        return ""


def _missing_instrumentations(dists: dict[str, Distribution]) -> list[Finding]:
    """Libraries installed on purpose (no other package pulled them in) without their instrumentation."""
    pulled_in = {canonicalize_name(_requirement_name(text)) for dist in dists.values()
                 for text in dist.requires if "extra" not in text}
    findings = []
    for library, instrumentation in INSTRUMENTED_LIBRARIES.items():
        if library in dists and library not in pulled_in and instrumentation not in dists:
            findings.append(bad(TOPIC, "missing-instrumentation",
                                f"{library} {dists[library].version} is installed but "
                                f"{instrumentation} is not, so its calls make no spans",
                                f"pip install {instrumentation}"))
    return findings
