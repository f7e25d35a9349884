"""The library's architecture holds: its layers (pyproject.toml) and no import cycle anywhere.

The layers contract is import-linter's, run as `lint-imports`; the cycle test
reads the same import graph (grimp, which import-linter is built on) and
asks, for every import A -> B inside ``tracequest``, whether B reaches back to
A. Imports under ``if TYPE_CHECKING:`` are annotations and do not count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_no_module_of_the_library_is_part_of_an_import_cycle():
    graph = grimp.build_graph("tracequest", exclude_type_checking_imports=True)
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
