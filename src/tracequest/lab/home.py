"""Where a lab lives: its home folder (``.tracequest``) and the state file in it.

``tracequest up`` records what it started in ``<home>/lab.json``; every later
command, from any folder under the repository, finds the lab through it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tracequest.host.paths import find_repo_root

STATE_FILE = "lab.json"
HOME_DIR = ".tracequest"


def find_home(start: Path | None = None) -> Path:
    """The lab's state folder: $TRACEQUEST_HOME, or the nearest .tracequest upwards.

    Searching upwards lets `tracequest status` work from notebooks/ or labs/.
    """
    if os.environ.get("TRACEQUEST_HOME"):
        return Path(os.environ["TRACEQUEST_HOME"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / HOME_DIR / STATE_FILE).exists():
            return folder / HOME_DIR
    root = find_repo_root(here)
    if root is not None and root in (here, *here.parents):
        return root / HOME_DIR
    return here / HOME_DIR


def read_state(home: Path) -> dict:
    """What ``<home>/lab.json`` records (``settings``, ``processes``, ``started_at``); {} when unreadable."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(home: Path, settings: dict, processes: dict) -> None:
    """Record a lab's settings and processes in ``<home>/lab.json``, replacing it whole.

    The file is written beside its place and renamed into it, so a reader never
    sees half of it.
    """
    state = {"settings": settings, "processes": processes, "started_at": time.time()}
    home.mkdir(parents=True, exist_ok=True)
    tmp = (home / STATE_FILE).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(home / STATE_FILE)
