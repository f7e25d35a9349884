"""The Java runtime that runs the lab's jars (Zipkin's server), and how to ask for one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tracequest.programs.cache import ProgramError

JAVA_INSTALL_HINT = ("install a Java 17 or newer runtime (Debian/Ubuntu: "
                     "`sudo apt-get install -y openjdk-17-jre-headless`; macOS: "
                     "`brew install openjdk@17`; others: https://adoptium.net), "
                     "or point JAVA_HOME at one")


def find_java() -> str | None:
    """The java launcher: ``$JAVA_HOME/bin/java`` when set, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def java_major(java: str) -> int | None:
    """The major version ``java -version`` reports (8 for "1.8.0_392"), or None."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java(what: str, minimum: int, error: type[ProgramError] = ProgramError) -> str:
    """A Java at least ``minimum`` to run ``what``, or ``error`` naming what to install."""
    java = find_java()
    if java is None:
        raise error(f"Java is not installed, and {what} needs Java "
                    f"{minimum} or newer: {JAVA_INSTALL_HINT}.")
    major = java_major(java)
    if major is None:
        raise error(f"`{java} -version` did not say which Java it is; {what} "
                    f"needs Java {minimum} or newer: {JAVA_INSTALL_HINT}.")
    if major < minimum:
        raise error(f"{java} is Java {major}, too old for {what}, which "
                    f"needs Java {minimum} or newer: {JAVA_INSTALL_HINT}.")
    return java
