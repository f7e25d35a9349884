"""Throw-away virtual environments from PyPI, for the pitfalls that live in what is installed.

A mismatched OpenTelemetry set can only be shown in an environment of its own:
the lab's must stay consistent. Each one is built once with pip and kept under
the lab's cache (``~/.cache/tracequest/venvs/<key>``), the key naming its
versions, so tests and the notebook reuse it. Building one takes about a
minute and needs PyPI; a lock keeps two test runs from building it side by side.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from tracequest.programs.cache import build_lock, cache_dir

# What happens to a learner who installed the Flask instrumentation from an old tutorial
# and then the current distro: pip upgrades opentelemetry-instrumentation under it, warns
# about the conflict, and installs anyway. opentelemetry-instrument then fails to import
# the Flask instrumentation 0.48b0 (it needs names 0.66b1 dropped) and skips it. requests
# is installed with no instrumentation at all.
MISMATCHED = (
    ("flask>=3,<4", "requests", "opentelemetry-instrumentation-flask==0.48b0"),
    ("opentelemetry-distro==0.66b1", "opentelemetry-exporter-otlp-proto-grpc==1.45.1"),
)


def venvs_dir() -> Path:
    return cache_dir() / "venvs"


def throwaway_venv(steps: tuple[tuple[str, ...], ...] = MISMATCHED, log=lambda line: None) -> Path:
    """The python of a venv with each step's packages pip-installed in turn; built once."""
    key = hashlib.sha256(repr(steps).encode()).hexdigest()[:12]
    home = venvs_dir() / key
    python = home / "bin" / "python"
    if (home / "ready").exists():
        return python
    with build_lock(log, key=f"venv-{key}", what=f"a throw-away venv ({key})"):
        if (home / "ready").exists():  # built by whoever held the lock first
            return python
        # A venv cannot move (its scripts name their interpreter by path), so it is built in
        # place; "ready", written last, says it is whole.
        shutil.rmtree(home, ignore_errors=True)
        home.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        for step in steps:
            # pip reports the conflict a step makes, and installs it: that is the pitfall.
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *step],
                           check=True, capture_output=True, text=True)
        tmp = home / "ready.tmp"
        tmp.write_text("\n".join(" ".join(step) for step in steps) + "\n")
        tmp.replace(home / "ready")
    return python
