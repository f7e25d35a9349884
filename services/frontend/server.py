"""HTTP handlers of the frontend service: the web page and /dispatch."""

import re
import uuid

from flask import render_template, request
from opentelemetry import baggage, context, trace

from services.assistant.client import AssistantClient
from services.common.app import create_app as create_base_app
from services.common.app import query_arg
from services.frontend.best_eta import BestETA

# A session id from the browser is trusted only if it looks like one.
SESSION_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def session_id():
    """The caller's X-Session-Id, or a fresh one so every dispatch belongs to a session."""
    given = request.headers.get("X-Session-Id", "")
    return given if SESSION_ID.fullmatch(given) else uuid.uuid4().hex[:12]


def create_app(settings):
    app = create_base_app(__name__, "frontend", settings)
    best_eta = BestETA(settings.customer_url, settings.driver_url, settings.route_url,
                       settings.fix_route_worker_pool_size, settings.payment_delay,
                       settings.regression_double_customer_call,
                       settings.regression_unbounded_route_calls)

    @app.get("/")
    def index():
        return render_template("index.html")

    assistant = AssistantClient(settings.assistant_url)

    @app.post("/ask")
    def ask():
        """The page's question box, passed on to the assistant in this request's trace."""
        body = request.get_json(silent=True) or {}
        question, customer = body.get("question"), body.get("customer")
        session = session_id()
        span = trace.get_current_span()
        span.set_attribute("session.id", session)
        ctx = baggage.set_baggage("session", session)
        if customer:
            span.set_attribute("customer.id", str(customer))
            ctx = baggage.set_baggage("customer", str(customer), context=ctx)
        token = context.attach(ctx)
        try:
            return assistant.ask(question, customer)
        finally:
            context.detach(token)

    @app.get("/dispatch")
    def dispatch():
        customer_id = query_arg("customer", hint=" (a customer id such as 123)")
        session = session_id()
        span = trace.get_current_span()
        span.set_attributes({"customer.id": customer_id, "session.id": session})
        # Baggage travels with every outgoing call (the requests instrumentation
        # injects it), so each service can tag its spans with customer and session.
        ctx = baggage.set_baggage("customer", customer_id)
        ctx = baggage.set_baggage("session", session, context=ctx)
        token = context.attach(ctx)
        try:
            result = best_eta.dispatch(customer_id)
        finally:
            context.detach(token)
        result["session"] = session
        result["trace_id"] = trace.format_trace_id(span.get_span_context().trace_id)
        return result

    return app
