"""Trace Quest: a hands-on lab for distributed tracing with OpenTelemetry and Jaeger."""

from tracequest.traces.client import QueryClient
from tracequest.traces.model import Event, Link, Span, Trace, group_traces

__all__ = ["QueryClient", "Event", "Link", "Span", "Trace", "group_traces"]
__version__ = "0.1.0"
