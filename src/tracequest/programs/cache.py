"""What a real program is to the lab, and the cache every build and fetch lands in.

A :class:`Program` is one entry of :mod:`tracequest.programs.registry`: its
name, version, the image compose runs instead, how it is made here, the
variable that points at a copy of one's own, and how to find, make or explain
its absence. Each program's own module builds its entry; nothing else lists
programs.

Builds and downloads are kept outside the repository, in a per-user cache
keyed by version (``~/.cache/tracequest/<program>-<version>/``), so a fresh
clone on the same machine reuses them. One build of one version runs at a
time (:func:`build_lock`): two terminals or two test runs asking at once would
otherwise build it twice side by side on a small machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tracequest.errors import TraceQuestError

try:
    import fcntl
except ImportError:   # Windows
    fcntl = None

#: How a learner builds or fetches what is missing (shown by errors and by status).
BUILD_COMMAND = "tracequest backends build"


class ProgramError(TraceQuestError):
    """A real program cannot be had or run here; the message says what to do."""


class BuildError(ProgramError):
    """A real program could not be built or fetched; the message says what to do."""


@dataclass(frozen=True)
class Program:
    """One real program of the lab: what it is, and how the lab gets hold of it.

    ``find`` answers at once (a path, or None); ``make`` builds or fetches it
    into the cache (None for a program the lab cannot make, such as Debian's
    Prometheus); ``missing_reason`` is the one sentence that says why it is
    absent and how to get it; ``check_runnable`` raises a ProgramError when it
    is here but cannot run (Zipkin without a Java 17). ``artifact`` says what
    it is on disk: a ``bin`` or a ``jar``; ``error`` is the class its refusals raise.
    """

    name: str
    title: str
    version: str
    image: str
    origin: str
    override: str
    find: Callable[[], Path | None]
    missing_reason: Callable[[], str]
    make: Callable[..., Path] | None = None
    check_runnable: Callable[[], object] | None = None
    artifact: str = "bin"
    error: type[ProgramError] = BuildError

    def ensure(self, log=print) -> Path:
        """The program found (``override``'s file, else the cache), or else made once.

        An override that names no usable file is refused: it is never silently
        replaced by a build the learner did not ask for.
        """
        found = self.find()
        if found is not None:
            return found
        if os.environ.get(self.override) or self.make is None:
            raise self.error(self.missing_reason())
        return self.make(log=log)

    def where(self) -> str:
        """Where the program comes from right now: the override, the cache, or why it is absent."""
        if self.find() is None:
            return self.missing_reason()
        return f"from {self.override}" if os.environ.get(self.override) else "cached"


def cache_dir() -> Path:
    """Root of built binaries and fetched jars: outside the repo, so every clone shares them."""
    root = os.environ.get("TRACEQUEST_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "tracequest"


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_program(override: str, cached: Path, usable: Callable[[Path], bool] = is_executable) -> Path | None:
    """The file an override variable names, else the cached one; None unless ``usable``."""
    path = Path(os.environ[override]).expanduser() if os.environ.get(override) else cached
    return path if usable(path) else None


def missing_build_reason(override: str, what: str, needs: str) -> str:
    """Why a program the lab builds is absent: a bad override, or not built yet and how to build it."""
    if os.environ.get(override):
        return (f"{override}={os.environ[override]} is not an executable file; "
                "fix it or unset it to use the cached build.")
    return (f"{what} is not built yet: run `{BUILD_COMMAND}` or `make backends` ({needs}), "
            f"or set {override} to an existing binary.")


@contextmanager
def build_lock(log, key: str, what: str) -> Iterator[bool]:
    """Hold the build lock of ``key``; yields True if another build held it first."""
    if fcntl is None:   # Windows: no lock; the atomic rename keeps overlapping builds safe
        yield False
        return
    lock = cache_dir() / f".{key}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            log(f"another build of {what} is running; waiting for it ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = True
        yield waited   # the lock goes with the file handle


def build_once(log, key: str, what: str, target: Path, make,
               made: Callable[[Path], bool] = is_executable) -> Path:
    """Run ``make(target)`` under the build lock of ``key``, unless a build that held it made target.

    A caller that had to wait for another build reuses its result instead of
    building again.
    """
    with build_lock(log, key, what) as waited:
        if waited and made(target):
            log(f"reusing {target}, made meanwhile")
            return target
        return make(target)
