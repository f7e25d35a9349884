"""The embedded backend: the lab's own OTLP receiver, span store, query API and pages.

It is what ``make up`` runs by default (``python -m tracequest.backend``):
OTLP over gRPC and HTTP in, SQLite under ``.tracequest/``, Jaeger's query API
v3 and the lab's pages out.

May import: ``tracequest.traces``, ``tracequest.host``, ``tracequest.errors``
and the knob table (``services.common.knobs``); never the lab, the programs,
the checks or the CLI.
"""

from tracequest.backend.server import Backend, start_backend

__all__ = ["Backend", "start_backend"]
