"""`tracequest doctor`: look at a learner's tracing set-up and name each problem with its fix.

Each check returns findings (see ``findings.Finding``); the report is one line
per finding, ✓ or ✗, what was found and what to do. The checks run in the
order a span travels: the environment that configures the exporter, the
packages that make spans, the port they go to, a real round trip, the
collector configs (those compose/ mounts, and one named on the command line),
and the learner's own program.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from .collector_lint import check_collector_config
from .container import check_compose, detect, is_local, localhost_in_container
from .findings import Finding
from .otel_env import ExporterSettings, check_environment
from .packages import check_packages
from .watch import watch
from .wire import check_port, round_trip


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


# --- the command ------------------------------------------------------------

def register_commands(commands) -> None:
    """Add `doctor` to the CLI's subparsers."""
    doctor = commands.add_parser(
        "doctor", help="diagnose your tracing set-up: environment, packages, ports, a round trip",
        description="Check the OTEL_* environment, the installed OpenTelemetry packages, the port "
                    "spans go to, a real round trip of a test span, and the collector configs "
                    "compose/ mounts into containers; optionally a collector config and your own "
                    "program. One line per finding, with its fix. Inside a container, localhost "
                    "is the container itself: the doctor guesses whether it runs in one "
                    "(TRACEQUEST_CONTAINER=1 or 0 overrides the guess).")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.add_argument("--url", help="query API to look for the test span in (default: the running "
                                      "lab's, else $TRACEQUEST_QUERY_URL, else http://127.0.0.1:16686)")
    doctor.add_argument("--python", help="examine the packages of this interpreter "
                                         "(default: the one running tracequest)")
    doctor.add_argument("--collector-config", type=Path, metavar="FILE", help="a collector YAML to check")
    doctor.add_argument("--compose", type=Path, metavar="DIR",
                        help="a folder of compose files: check the collector configs they mount into "
                             "containers (default: the lab's compose/)")
    doctor.add_argument("--run", metavar="CMD", help="run this command against a private backend and "
                                                     "judge the spans it sends, e.g. --run 'python app.py'")
    doctor.add_argument("--request", action="append", metavar="URL",
                        help="with --run: GET this URL once the program listens (repeat for more)")
    doctor.add_argument("--seconds", type=float, default=10.0,
                        help="with --run and no --request: how long the command may run, in seconds")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..client import default_url
    from ..lab import Lab
    from ..paths import find_repo_root

    if args.request and not args.run:
        print("tracequest doctor: error: --request needs --run", file=sys.stderr)
        return 2
    if args.collector_config and not args.collector_config.is_file():
        print(f"tracequest doctor: error: no file {args.collector_config}", file=sys.stderr)
        return 2
    if args.compose and not args.compose.is_dir():
        print(f"tracequest doctor: error: no folder {args.compose}", file=sys.stderr)
        return 2
    lab = None if args.url else Lab.from_state()
    query_url = args.url or (lab.query_url if lab else default_url())
    root = find_repo_root()
    compose = args.compose or (root / "compose" if root else None)
    findings = diagnose(os.environ, query_url, args.python, args.collector_config,
                        shlex.split(args.run) if args.run else None, args.request or [], args.seconds,
                        compose=compose)
    if args.json:
        print(json.dumps({"ok": all(f.ok for f in findings),
                          "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        print(render(findings))
    return 0 if all(f.ok for f in findings) else 1
