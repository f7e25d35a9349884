"""How long each chapter notebook takes to run, against a fresh lab on free ports.

Starts the lab in a temporary folder, runs every notebook in notebooks/ top to
bottom in its own kernel (as a learner's "Run All" would), prints one line per
notebook, then stops the lab. The notebooks' own files are not changed.

    python benchmarks/notebook_times.py [notebooks/03-*.ipynb ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tracequest.lab import Lab, LabSettings
from tracequest.host.ports import Ports

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
LIMIT_S = 120


def run(path: Path, home: str) -> tuple[float, str]:
    """Run one notebook; return its time and "ok" or the first error's name and message."""
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "TRACEQUEST_HOME": home,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))}
    client = NotebookClient(nb, timeout=LIMIT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    started = time.perf_counter()
    try:
        client.execute(env=env)
        outcome = "ok"
    except CellExecutionError as exc:
        outcome = f"FAILED: {exc.ename}: {exc.evalue}"
    return time.perf_counter() - started, outcome


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(NOTEBOOK_DIR.glob("[0-9][0-9]-*.ipynb"))
    failed = 0
    with tempfile.TemporaryDirectory(prefix="tracequest-bench-") as home:
        lab = Lab(LabSettings(ports=Ports.free()), home)
        started = time.perf_counter()
        lab.up(log=lambda *_: None)
        print(f"lab up in {time.perf_counter() - started:.1f}s, frontend at {lab.frontend_url}")
        total = 0.0
        try:
            for path in paths:
                seconds, outcome = run(path, home)
                total += seconds
                over = "  OVER THE LIMIT" if seconds >= LIMIT_S else ""
                failed += outcome != "ok" or bool(over)
                print(f"{path.name:<36} {seconds:6.1f}s  {outcome}{over}", flush=True)
        finally:
            lab.down(log=lambda *_: None)
    print(f"{'total':<36} {total:6.1f}s  (limit {LIMIT_S}s per notebook)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
