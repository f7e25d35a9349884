"""Trace Quest: a hands-on lab for distributed tracing with OpenTelemetry and Jaeger."""

from .client import QueryClient
from .model import Event, Link, Span, Trace, group_traces

__all__ = ["QueryClient", "Event", "Link", "Span", "Trace", "group_traces"]
__version__ = "0.1.0"
