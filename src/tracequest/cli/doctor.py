"""`tracequest doctor`: the command around :mod:`tracequest.pitfalls.doctor`'s diagnosis."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from tracequest.host.paths import find_repo_root
from tracequest.lab import Lab
from tracequest.pitfalls.doctor import diagnose, render
from tracequest.traces.client import default_url


def register(commands) -> None:
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
