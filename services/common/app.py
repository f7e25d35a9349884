"""The parts every service's Flask app shares.

Each service builds its app with `create_app` and is started by `start`, so the
four services agree on health checks, JSON errors, the `traceresponse` header,
reading baggage, and shutting down in a way that keeps their last spans.
"""

import logging
import signal
import sys

from flask import Flask, jsonify, request
from opentelemetry import baggage, trace
from opentelemetry.trace import Status, StatusCode
from werkzeug.exceptions import BadRequest, HTTPException

from services.common import config, logs, randomness
from services.common.http import DownstreamError

logger = logging.getLogger(__name__)

# Baggage keys the frontend sets, and the span attributes they become downstream.
BAGGAGE_ATTRIBUTES = {"customer": "customer.id", "session": "session.id"}


def mark_error(message, exception=None):
    """Mark the current (server) span as failed so the trace shows where a request went wrong.

    HTTP instrumentation leaves 4xx server spans unset, as the client was at
    fault; the demo marks them anyway so bad input is easy to find in a trace.
    """
    span = trace.get_current_span()
    if exception is not None:
        span.record_exception(exception)
    span.set_status(Status(StatusCode.ERROR, message))


def query_arg(name, parse=str, hint=""):
    """Return query parameter `name` run through `parse`, or answer 400 in plain words."""
    text = request.args.get(name)
    if text is None or not text.strip():
        raise BadRequest(f"missing query parameter '{name}'{hint}")
    try:
        return parse(text)
    except ValueError as error:
        raise BadRequest(f"query parameter '{name}' is malformed: {error}") from None


def _json_error(status, message, **extra):
    return jsonify(error=message, **extra), status


def _handle_http_exception(error):
    mark_error(error.description)
    return _json_error(error.code, error.description)


def _handle_downstream_error(error):
    logger.error("%s", error.message)
    mark_error(error.message, error)
    return _json_error(error.status, error.message, service=error.service, url=error.url)


def _handle_unexpected(error):
    logger.exception("unexpected error")
    mark_error(str(error), error)
    return _json_error(500, f"internal error: {type(error).__name__}: {error}")


def _baggage_to_attributes():
    """Copy the frontend's baggage onto this service's server span.

    Then every service's spans can be searched by customer or session, not
    only the frontend's.
    """
    span = trace.get_current_span()
    for key, attribute in BAGGAGE_ATTRIBUTES.items():
        value = baggage.get_baggage(key)
        if value is not None:
            span.set_attribute(attribute, str(value))


def _add_traceresponse(response):
    """Tell the caller which trace its request made (W3C Trace Context `traceresponse`)."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        response.headers["traceresponse"] = "00-{}-{}-{:02x}".format(
            trace.format_trace_id(span_context.trace_id),
            trace.format_span_id(span_context.span_id),
            span_context.trace_flags & trace.TraceFlags.SAMPLED,
        )
        # Browser code may read the header only if it is exposed.
        response.headers["Access-Control-Expose-Headers"] = "traceresponse"
    return response


def create_app(import_name, service, settings):
    """Build a Flask app with the routes and hooks every service has.

    `settings` is the parsed command line; /config shows it, so a learner can
    check which fix flags a running service really uses.
    """
    app = Flask(import_name)
    app.json.sort_keys = False
    app.config["SERVICE"] = service
    app.config["SETTINGS"] = settings

    @app.get("/health")
    def health():
        return {"status": "ok", "service": service}

    @app.get("/config")
    def show_config():
        if getattr(settings, "mystery", None) is not None:
            # The flags would give the mystery away: the traces have to tell.
            return {"service": service,
                    "mystery": "on (quest 03): the flags stay hidden, so the traces have to tell"}
        return {"service": service, "flags": vars(settings)}

    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(DownstreamError, _handle_downstream_error)
    app.register_error_handler(Exception, _handle_unexpected)
    app.before_request(_baggage_to_attributes)
    app.after_request(_add_traceresponse)
    return app


def _exit_on_sigterm(signum, frame):
    # sys.exit runs atexit hooks, where the OpenTelemetry SDK flushes queued spans.
    sys.exit(0)


def run(app, port, host=config.HOST):
    """Serve `app` as auto-instrumentation needs: no reloader, no debugger, a thread per request."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logger.info("%s listening on http://%s:%d", app.config["SERVICE"], host, port)
    app.run(host=host, port=port, threaded=True, use_reloader=False, debug=False)


def start(service, create_service_app, argv=None):
    """What ``python -m services.<name>`` does: read flags, set up logs, build the app, serve."""
    settings = config.parse_args(service, argv)
    logs.setup(service)
    if settings.seed is not None:
        randomness.seed(settings.seed)
    run(create_service_app(settings), settings.port, settings.host)
