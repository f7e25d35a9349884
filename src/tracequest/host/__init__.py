"""What the machine gives the lab: child processes, ports and the repository's paths.

``procs`` is the only place anything is started, probed, stopped or waited
for; ``ports`` knows every port and whether it is free; ``paths`` finds the
repository and its files.

May import: ``tracequest.errors`` and the knob table (``services.common.knobs``);
nothing else of the library.
"""
