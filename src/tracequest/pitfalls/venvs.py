"""Throw-away virtual environments from PyPI, for the pitfalls that live in what is installed.

A mismatched OpenTelemetry set can only be shown in an environment of its own:
the lab's must stay consistent. Each one is built once with pip and kept in
``~/.cache/tracequest/venvs/<key>``, the key naming its versions, so tests and
the notebook reuse it (building one takes about a minute and needs PyPI).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path.home() / ".cache" / "tracequest" / "venvs"

# flask without its instrumentation, and an SDK downgraded alone below the
# instrumentation that pins semantic-conventions 0.66b1: pip warns and installs anyway.
MISMATCHED = (
    ("flask>=3,<4", "opentelemetry-sdk==1.45.1", "opentelemetry-instrumentation-requests==0.66b1", "requests"),
    ("opentelemetry-api==1.40.0", "opentelemetry-sdk==1.40.0", "opentelemetry-semantic-conventions==0.61b0"),
)


def throwaway_venv(steps: tuple[tuple[str, ...], ...] = MISMATCHED) -> Path:
    """The python of a venv with each step's packages pip-installed in turn; built once."""
    key = hashlib.sha256(repr(steps).encode()).hexdigest()[:12]
    home = CACHE / key
    python = home / "bin" / "python"
    if (home / "ready").exists():
        return python
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    for step in steps:
        # pip reports the conflict a step makes, and installs it: that is the pitfall.
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *step],
                       check=True, capture_output=True, text=True)
    (home / "ready").write_text("\n".join(" ".join(step) for step in steps) + "\n")
    return python
