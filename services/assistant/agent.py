"""The agent loop: send the conversation to the model, run the tools it asks for, repeat.

Nobody knows in advance how many iterations a question takes; the trace shows
it. Each iteration is a span of its own under the ``invoke_agent`` span, and
holds the model call (a ``chat`` span made by the zero-code GenAI
instrumentation) and one ``execute_tool`` span per tool call.

The ``chat`` span ends inside the ``openai`` call, before the agent sees the
answer, so each call's cost (from the price table) is recorded on the
iteration that made it: one model call per iteration, one price per call.

A rate-limited call (HTTP 429) is retried here, after the wait the server
asks for, not inside the ``openai`` client: then each attempt is its own
``chat`` span, and the refused one shows as an error in the waterfall.
"""

import json
import logging
import time
from dataclasses import dataclass

import openai
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.assistant.domain import (AGENT_NAME, PROVIDER, SYSTEM_PROMPT, TOOLS, Call, Ledger,
                                       Prices)
from services.model.client import MODEL

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

MODEL_ATTEMPTS = 3  # tries per model call when the server rate-limits
MAX_TOKENS = 400  # longest answer the agent asks for


@dataclass
class Outcome:
    """What one question came to: the answer, how it ended, and the ledger."""

    answer: str
    finish_reason: str
    iterations: int
    stopped: str  # "answered", or "max_iterations" when the loop was cut off
    ledger: Ledger


def retry_after(error):
    """Seconds a 429 answer asks the caller to wait (retry-after-ms, then retry-after)."""
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, TypeError, ValueError):
            continue
    return 1.0


class Agent:
    """The help-desk agent: one OpenAI client, a toolbox, a price table and an iteration cap."""

    def __init__(self, client, toolbox, prices=Prices(), max_iterations=6, capture_content=False):
        self.client, self.toolbox, self.prices = client, toolbox, prices
        self.max_iterations = max_iterations
        self.capture_content = capture_content

    def ask(self, question, customer_id=None):
        """Answer one question, looping until the model stops asking for tools."""
        system = SYSTEM_PROMPT + (f" The customer id is {customer_id}." if customer_id else "")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        ledger = Ledger()
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": PROVIDER,
                      "gen_ai.agent.name": AGENT_NAME, "gen_ai.request.model": MODEL}
        with tracer.start_as_current_span(f"invoke_agent {AGENT_NAME}", kind=SpanKind.INTERNAL,
                                          attributes=attributes) as span:
            if self.capture_content:
                span.set_attribute("gen_ai.input.messages", json.dumps(messages))
            outcome = self._loop(messages, ledger)
            span.set_attribute("agent.iterations", outcome.iterations)
            if outcome.stopped != "answered":
                span.set_status(Status(StatusCode.ERROR, f"no answer after {outcome.iterations} "
                                                         "iterations"))
                span.set_attribute("error.type", "max_iterations")
            if self.capture_content:
                span.set_attribute("gen_ai.output.messages", json.dumps(
                    [{"role": "assistant", "content": outcome.answer}]))
        return outcome

    def _loop(self, messages, ledger):
        for iteration in range(1, self.max_iterations + 1):
            with tracer.start_as_current_span("agent iteration",
                                              attributes={"agent.iteration": iteration}) as span:
                completion = self._call_model(messages, ledger)
                choice = completion.choices[0]
                self._record(span, iteration, completion, ledger)
                message = choice.message
                if not message.tool_calls:
                    return Outcome(message.content or "", choice.finish_reason, iteration,
                                   "answered", ledger)
                messages.append(message.model_dump(exclude_none=True))
                for call in message.tool_calls:
                    result = self.toolbox.execute(call.id, call.function.name, call.function.arguments)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        answer = (f"Sorry, I could not work that out within {self.max_iterations} steps. "
                  "Please ask again, or call us.")
        logger.error("gave up after %d iterations", self.max_iterations)
        return Outcome(answer, "max_iterations", self.max_iterations, "max_iterations", ledger)

    def _call_model(self, messages, ledger):
        """One model call; a 429 is retried after the wait it names (each try its own span)."""
        for attempt in range(1, MODEL_ATTEMPTS + 1):
            try:
                return self.client.chat.completions.create(
                    model=MODEL, messages=messages, tools=TOOLS, max_tokens=MAX_TOKENS)
            except openai.RateLimitError as error:
                if attempt == MODEL_ATTEMPTS:
                    raise
                wait = retry_after(error)
                ledger.rate_limited += 1
                logger.warning("model call rate-limited (attempt %d of %d); retrying in %.0f ms",
                               attempt, MODEL_ATTEMPTS, wait * 1000)
                time.sleep(wait)

    def _record(self, span, iteration, completion, ledger):
        """Put the call's price on its iteration span and in the ledger, from the same numbers."""
        usage = completion.usage
        details = usage.prompt_tokens_details
        cached = (details.cached_tokens or 0) if details else 0
        input_cost, output_cost = self.prices.cost(usage.prompt_tokens, cached,
                                                   usage.completion_tokens)
        call = Call(iteration, completion.model, usage.prompt_tokens, cached,
                    usage.completion_tokens, completion.choices[0].finish_reason, input_cost,
                    output_cost)
        ledger.add(call)
        # The instrumentation (2.4b0) leaves cache reads off its chat span; the price needs them.
        span.set_attributes({"gen_ai.usage.cache_read.input_tokens": cached,
                             "llm.cost.input_usd": input_cost, "llm.cost.output_usd": output_cost,
                             "llm.cost.usd": call.cost_usd})
