"""Where things are in a clone of the lab: the repository and its folders.

Every part of the lab finds the repository the same way: upwards from the
current folder (so commands work from notebooks/ or labs/), then beside the
installed package (an editable install lives in the clone's src/).
"""

from __future__ import annotations

from pathlib import Path

from tracequest.errors import TraceQuestError

# Folders only a clone of Trace Quest has, all together.
_MARKERS = ("services", "compose", "checks", "labs")


class RepoNotFound(TraceQuestError, FileNotFoundError):
    """The command needs the repository's files and runs outside a clone."""


def is_repo_root(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in _MARKERS)


def find_repo_root(start: Path | None = None) -> Path | None:
    """The clone holding the current folder, else the one holding this package, else None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_repo_root(folder):
            return folder
    beside_package = Path(__file__).resolve().parents[3]
    return beside_package if is_repo_root(beside_package) else None


def repo_root(start: Path | None = None) -> Path:
    """Like :func:`find_repo_root`, but a clear error when there is no clone."""
    root = find_repo_root(start)
    if root is None:
        raise RepoNotFound("cannot find the Trace Quest folder (the one with services/, compose/, "
                           "checks/ and labs/). Run this command from inside your clone of the lab.")
    return root


def compose_dir() -> Path:
    """compose/: the Docker Compose files and the Jaeger and Collector configs they mount."""
    return repo_root() / "compose"


def compose_file(*parts: str) -> Path:
    """A file under compose/, or a clear error naming it when it is missing."""
    path = compose_dir().joinpath(*parts)
    if not path.exists():
        raise RepoNotFound(f"{path} is missing: the real backends read their configs from the "
                           "repository's compose/ folder; run the lab from a clone of the repository.")
    return path
