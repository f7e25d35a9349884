"""The Go toolchain that builds Jaeger and the lab's Collector from the Go module proxy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tracequest.programs.cache import BuildError, is_executable

#: Oldest Go that builds the pinned Jaeger and Collector (Jaeger's go.mod says 1.24.6).
MIN_GO = (1, 24)
#: Where Go lands when installed from go.dev but not (yet) on PATH.
GO_FALLBACKS = ("/usr/local/go/bin/go",)
#: What a missing-program sentence says a Go build needs.
GO_NEEDS = f"needs Go {MIN_GO[0]}.{MIN_GO[1]}+ and the Go module proxy"


def find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    goroot = os.environ.get("GOROOT")
    candidates = ([os.path.join(goroot, "bin", "go")] if goroot else []) + list(GO_FALLBACKS)
    return next((c for c in candidates if is_executable(Path(c))), None)


def check_go(what: str, override: str, error: type[BuildError]) -> str:
    """Path of a Go toolchain new enough to build ``what``, or ``error`` saying what to do."""
    go = find_go()
    if go is None:
        raise error(
            f"Go is not installed, so {what} cannot be built. Install Go "
            f"{MIN_GO[0]}.{MIN_GO[1]} or newer (https://go.dev/dl/), or set "
            f"{override} to an existing binary.")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True,
                         text=True).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match:
        raise error(f"cannot tell the Go version from {out!r} ({go}).")
    found = (int(match.group(1)), int(match.group(2)))
    if found < MIN_GO:
        raise error(
            f"Go {found[0]}.{found[1]} is too old to build {what}; "
            f"it needs Go {MIN_GO[0]}.{MIN_GO[1]} or newer. Upgrade Go, or set "
            f"{override} to an existing binary.")
    return go


def go(go_path: str, args: list[str], cwd: Path, env: dict[str, str], error: type[BuildError]) -> str:
    """Run one Go command; its stdout, or ``error`` with the end of its stderr."""
    proc = subprocess.run([go_path, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise error(
            f"`go {' '.join(args)}` failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()[-4000:]}")
    return proc.stdout


def go_env() -> dict[str, str]:
    """The environment of every Go command here: static, local toolchain, no user flags."""
    # GOFLAGS is cleared so a user's -mod=vendor or similar cannot leak in.
    return dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="", GOWORK="off")
