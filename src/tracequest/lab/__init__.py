"""The lab: the demo services and a trace backend as one thing that starts and stops.

Holds the lab's settings and state file, the recipe for each program it runs,
the scale-out topology, load and designed traffic, and the helpers the
notebooks use. ``from tracequest.lab import Lab, LabSettings`` is its face.

May import: ``tracequest.programs``, ``tracequest.traces``, ``tracequest.host``,
``tracequest.errors`` and the knob table; never the embedded backend's modules
(it runs ``python -m tracequest.backend`` as a process), the checks or the CLI.
"""

from tracequest.lab.home import find_home
from tracequest.lab.lab import Lab
from tracequest.lab.settings import LabError, LabSettings

__all__ = ["Lab", "LabError", "LabSettings", "find_home"]
