"""Log lines that land in the trace, and traces that show up in log lines.

A log line says what the code was thinking; a span says when and where. This
module joins the two: every record becomes an event on the span that is
current when it is logged, and every console line carries that span's
trace_id and span_id so it can be looked up in the trace backend.

Both read the current span through the OpenTelemetry API, so they work the
same with or without zero-code instrumentation (without it, there is no span
and the ids print as "-").
"""

import logging
import sys

from opentelemetry import trace

FORMAT = ("%(asctime)s %(levelname)-7s %(service)s "
          "trace_id=%(trace_id)s span_id=%(span_id)s %(name)s: %(message)s")


class TraceContextFilter(logging.Filter):
    """Stamp each record with the service name and the current trace and span ids."""

    def __init__(self, service):
        super().__init__()
        self.service = service

    def filter(self, record):
        span_context = trace.get_current_span().get_span_context()
        record.service = self.service
        if span_context.is_valid:
            record.trace_id = trace.format_trace_id(span_context.trace_id)
            record.span_id = trace.format_span_id(span_context.span_id)
        else:
            record.trace_id = record.span_id = "-"
        return True


class SpanEventHandler(logging.Handler):
    """Copy each log record onto the current span as an event named after the message."""

    def emit(self, record):
        # The SDK's own records may come while it holds a span's lock: adding an event then deadlocks.
        if record.name.startswith("opentelemetry"):
            return
        span = trace.get_current_span()
        # An ended span or no span at all: there is nothing to attach to.
        if not span.is_recording():
            return
        attributes = {
            "level": record.levelname,
            "logger": record.name,
            "code.function.name": record.funcName,
            "code.line.number": record.lineno,
        }
        if record.exc_info and record.exc_info[1] is not None:
            attributes["exception.type"] = type(record.exc_info[1]).__name__
            attributes["exception.message"] = str(record.exc_info[1])
        span.add_event(record.getMessage(), attributes=attributes)


def setup(service, level=logging.INFO):
    """Send the process's logs to stderr with trace ids, and to the current span as events."""
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(TraceContextFilter(service))
    console.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.setLevel(level)
    # Replace, not add: calling setup twice must not print every line twice.
    root.handlers = [console, SpanEventHandler()]
