"""Wrong on purpose (a refused call leaves its span looking fine). The help-desk agent: send the conversation to the model, run the tools it asks for, repeat.

The reference solution of quest 11: one span per iteration, one CLIENT span
per model call (each attempt, a refused one too) with the GenAI attributes and
its price, and one execute_tool span per tool call inside its iteration.
"""

import os
import time
from dataclasses import dataclass

import openai
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import tools
from services.assistant.domain import SYSTEM_PROMPT, TOOLS
from services.common.knobs import knob

tracer = trace.get_tracer("helpdesk")

MODEL = "tq-mini"
PROVIDER = "openai"  # gen_ai.provider.name: the API the model server speaks
MAX_ITERATIONS = 6
ATTEMPTS = 3  # tries per model call when the server answers 429
# US dollars per million tokens, from the lab's price table (services/common/knobs.py).
PRICE_INPUT = knob("price-input-tokens").default
PRICE_CACHED_INPUT = knob("price-cached-input-tokens").default
PRICE_OUTPUT = knob("price-output-tokens").default

client = openai.OpenAI(base_url=os.environ.get("MODEL_URL", "http://127.0.0.1:5011") + "/v1",
                       api_key="not-needed-locally", max_retries=0)


@dataclass
class Call:
    """One answered model call, in the agent's own ledger."""

    model: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    cost_usd: float


def price(usage) -> float:
    """What one call costs, in US dollars: cached prompt tokens are cheaper."""
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details else 0
    dollars = ((usage.prompt_tokens - cached) * PRICE_INPUT + cached * PRICE_CACHED_INPUT
               + usage.completion_tokens * PRICE_OUTPUT) / 1e6
    return round(dollars, 9)


def ask(question, customer_id):
    """Answer one question: (answer, iterations, ledger)."""
    messages = [{"role": "system", "content": f"{SYSTEM_PROMPT} The customer id is {customer_id}."},
                {"role": "user", "content": question}]
    ledger = []
    for iteration in range(1, MAX_ITERATIONS + 1):
        with tracer.start_as_current_span("agent iteration",
                                          attributes={"agent.iteration": iteration}):
            completion = call_model(messages, ledger)
            message = completion.choices[0].message
            if not message.tool_calls:
                return message.content, iteration, ledger
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                name = call.function.name
                with tracer.start_as_current_span(
                        f"execute_tool {name}",
                        attributes={"gen_ai.operation.name": "execute_tool",
                                    "gen_ai.tool.name": name, "gen_ai.tool.call.id": call.id}):
                    result = tools.run(name, call.function.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return "Sorry, I could not work that out.", MAX_ITERATIONS, ledger


def call_model(messages, ledger):
    """One model call; a 429 is tried again after the wait the server asks for."""
    for attempt in range(1, ATTEMPTS + 1):
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER,
                      "gen_ai.request.model": MODEL}
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT,
                                          attributes=attributes) as span:
            try:
                completion = client.chat.completions.create(model=MODEL, messages=messages,
                                                            tools=TOOLS)
            except openai.RateLimitError as error:
                if attempt == ATTEMPTS:
                    raise
                wait = float(error.response.headers.get("retry-after-ms", "1000")) / 1000
            else:
                usage, choice = completion.usage, completion.choices[0]
                cost = price(usage)
                span.set_attributes({
                    "gen_ai.response.model": completion.model,
                    "gen_ai.response.id": completion.id,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "gen_ai.response.finish_reasons": [choice.finish_reason],
                    "llm.cost.usd": cost,
                })
                ledger.append(Call(completion.model, usage.prompt_tokens, usage.completion_tokens,
                                   choice.finish_reason, cost))
                return completion
        time.sleep(wait)  # outside the span: the wait is not the call's time
