"""HTTP handlers of the assistant service: POST /ask with a question about a ride."""

import os

import openai
from flask import request
from opentelemetry import baggage, trace
from werkzeug.exceptions import BadRequest

from services.assistant.agent import Agent
from services.assistant.domain import Prices
from services.assistant.tools import Toolbox
from services.common.app import create_app as create_base_app
from services.common.http import DownstreamError
from services.model.client import openai_client

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_QUESTION = 500  # characters


def capture_model_content():
    """Let the GenAI instrumentation record prompts and answers on its spans.

    It reads its setting once, when it instruments the ``openai`` library at
    start-up, so it is set and the library instrumented again.
    """
    os.environ[CAPTURE_ENV] = "span_only"
    try:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    except ImportError:  # run without the instrumentation: nothing to tell it
        return
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
        instrumentor.instrument()


def _question():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object such as {"question": "why is my driver late?", '
                         '"customer": "123"}')
    question = body.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BadRequest("missing 'question': what the customer asks, such as 'why is my driver late?'")
    if len(question) > MAX_QUESTION:
        raise BadRequest(f"the question is longer than {MAX_QUESTION} characters")
    customer = body.get("customer", baggage.get_baggage("customer"))
    if customer is not None and not str(customer).isdigit():
        raise BadRequest(f"'customer' must be a customer id such as 123, not {customer!r}")
    return question.strip(), None if customer is None else str(customer)


def create_app(settings):
    app = create_base_app(__name__, "assistant", settings)
    if settings.assistant_capture_content:
        capture_model_content()
    toolbox = Toolbox(settings.customer_url, settings.driver_url, settings.route_url,
                      settings.assistant_capture_content)
    prices = Prices(settings.price_input_tokens, settings.price_cached_input_tokens,
                    settings.price_output_tokens)
    agent = Agent(openai_client(settings.model_url), toolbox, prices,
                  settings.assistant_max_iterations, settings.assistant_capture_content)

    @app.post("/ask")
    def ask():
        question, customer = _question()
        span = trace.get_current_span()
        if customer is not None:
            span.set_attribute("customer.id", customer)
        try:
            outcome = agent.ask(question, customer)
        except openai.APIStatusError as error:
            raise DownstreamError("model", settings.model_url, 502,
                                  f"model server answered {error.status_code}: {error.message}") from error
        except openai.APIConnectionError as error:
            raise DownstreamError("model", settings.model_url, 503,
                                  f"model server at {settings.model_url} is unreachable") from error
        ledger = outcome.ledger
        return {"answer": outcome.answer, "finish_reason": outcome.finish_reason,
                "iterations": outcome.iterations, "stopped": outcome.stopped,
                "usage": ledger.totals(), "cost_usd": ledger.totals()["cost_usd"],
                "rate_limited": ledger.rate_limited, "calls": ledger.as_json(),
                "trace_id": trace.format_trace_id(span.get_span_context().trace_id)}

    return app
