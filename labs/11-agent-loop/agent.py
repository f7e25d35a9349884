"""The help-desk agent: send the conversation to the model, run the tools it asks for, repeat.

The loop works, and nothing of it shows in a trace: only the request span
(from telemetry.py) appears, so nobody can tell how many iterations a
question took, which call was slow, or what it cost. Your job is to add the
spans; the TODOs say where.
"""

import os
import time
from dataclasses import dataclass

import openai
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: F401  (you will need them)

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
        # TODO 1: one span per pass of the loop: wrap the body of this for loop in
        #         `with tracer.start_as_current_span("agent iteration") as span:` and set
        #         the attribute "agent.iteration" to `iteration`.
        completion = call_model(messages, ledger)
        message = completion.choices[0].message
        if not message.tool_calls:
            return message.content, iteration, ledger
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            # TODO 3: one span per tool call, inside its iteration: "execute_tool <name>"
            #         with gen_ai.operation.name = "execute_tool" and gen_ai.tool.name = its name.
            result = tools.run(call.function.name, call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return "Sorry, I could not work that out.", MAX_ITERATIONS, ledger


def call_model(messages, ledger):
    """One model call; a 429 is tried again after the wait the server asks for."""
    for attempt in range(1, ATTEMPTS + 1):
        # TODO 2: one CLIENT span per attempt, named f"chat {MODEL}", with the GenAI
        #         attributes: gen_ai.operation.name "chat", gen_ai.provider.name PROVIDER,
        #         gen_ai.request.model MODEL; once it answered: gen_ai.response.model,
        #         gen_ai.usage.input_tokens, gen_ai.usage.output_tokens,
        #         gen_ai.response.finish_reasons (a list), and llm.cost.usd (this call's price).
        #         A refused attempt (429) ends its span with status ERROR and error.type.
        try:
            completion = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        except openai.RateLimitError as error:
            if attempt == ATTEMPTS:
                raise
            time.sleep(float(error.response.headers.get("retry-after-ms", "1000")) / 1000)
            continue
        usage, choice = completion.usage, completion.choices[0]
        ledger.append(Call(completion.model, usage.prompt_tokens, usage.completion_tokens,
                           choice.finish_reason, price(usage)))
        return completion
