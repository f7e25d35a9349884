"""`tracequest doctor`: look at a learner's tracing set-up and name each problem with its fix.

Each check returns findings (see ``findings.Finding``); the report is one line
per finding, ✓ or ✗, what was found and what to do. The checks run in the
order a span travels: the environment that configures the exporter, the
packages that make spans, the port they go to, a real round trip, the
collector configs (those compose/ mounts, and one named on the command line),
and the learner's own program. The command and its options are
:mod:`tracequest.cli.doctor`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from tracequest.pitfalls.collector_lint import check_collector_config, check_compose
from tracequest.pitfalls.container import detect, is_local, localhost_in_container
from tracequest.pitfalls.findings import Finding
from tracequest.pitfalls.otel_env import ExporterSettings, check_environment
from tracequest.pitfalls.packages import check_packages
from tracequest.pitfalls.watch import watch
from tracequest.pitfalls.wire import check_port, round_trip


def diagnose(env: Mapping[str, str], query_url: str, python: str | None = None,
             collector_config: Path | None = None, run: list[str] | None = None,
             urls: list[str] = (), seconds: float = 10.0, compose: Path | None = None,
             container: str | None = None) -> list[Finding]:
    """Every finding, in the order a span travels.

    ``compose`` is a compose/ folder whose mounted collector configs are checked;
    ``container`` says why this process counts as running in a container ('' if
    it does not; None: guess, see ``container.detect``).
    """
    container = detect(env) if container is None else container
    settings = ExporterSettings.from_env(env)
    findings = check_environment(env) + check_packages(python)
    ports = check_port(settings)
    if ports[0].code == "nothing-listens" and container and is_local(settings.host):
        ports = [localhost_in_container(settings, container)]  # the cause, rather than the symptom
    findings += ports
    if ports[0].code not in ("nothing-listens", "localhost-in-container"):
        findings += round_trip(env, query_url)  # with nothing there, a round trip can only time out
    if compose is not None and compose.is_dir():
        findings += check_compose(compose)
    if collector_config:
        findings += check_collector_config(collector_config, env, container)
    if run:
        findings += watch(run, list(urls), env, seconds)
    return findings


def render(findings: list[Finding], stream=None) -> str:
    stream = stream or sys.stdout
    unicode = (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
    marks = ("✓", "✗") if unicode else ("ok", "XX")
    lines = [finding.line(marks) for finding in findings]
    problems = sum(1 for f in findings if not f.ok)
    lines.append(f"{problems} problem(s) found." if problems else "No problems found.")
    return "\n".join(lines)
