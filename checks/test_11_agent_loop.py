"""Quest 11, trace an agent loop: iterations, model calls, tools, tokens, cost and retries.

The help desk answers two questions, one that takes four iterations and one
that takes three, against the lab's model server with every third call
refused (429). Values are checked, not only names: each model call's tokens
must be the ones the server billed, each call's price the one in the agent's
ledger, and the retried calls must show as failed attempts followed by their
retry.
"""

import math
import re

import pytest

from tracequest.expect import ANY, select
from tracequest.expect.failure import fail

pytestmark = pytest.mark.quest("11")

# (question, iterations it takes, tool calls it makes)
QUESTIONS = (("why is my driver late?", 4, 4), ("which drivers are near me?", 3, 2))
RATE_LIMIT_EVERY = 3  # calls 3, 6 and 9 are refused
REFUSED = 3
MODEL = "tq-mini"
OLD_NAMES = {"gen_ai.system": "gen_ai.provider.name",
             "gen_ai.usage.prompt_tokens": "gen_ai.usage.input_tokens",
             "gen_ai.usage.completion_tokens": "gen_ai.usage.output_tokens",
             "llm.request.model": "gen_ai.request.model",
             "gen_ai.response.finish_reason": "gen_ai.response.finish_reasons"}
USAGE = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")

ITERATION_HINT = ("in ask(), wrap the body of the for loop in `with tracer.start_as_current_span("
                  "\"agent iteration\") as span:` and set span.set_attribute(\"agent.iteration\", "
                  "iteration): one span per pass, each under the request.")
CHAT_HINT = ("in call_model(), open one span per attempt, inside the for loop: `with "
             "tracer.start_as_current_span(f\"chat {MODEL}\", kind=SpanKind.CLIENT, "
             "attributes={\"gen_ai.operation.name\": \"chat\", ...})`.")
TOOL_HINT = ("in ask(), open `with tracer.start_as_current_span(f\"execute_tool {name}\")` around "
             "tools.run(...), with gen_ai.operation.name = \"execute_tool\" and gen_ai.tool.name.")
SIBLING_HINT = ("open each execute_tool span inside the `with` block of its iteration: the tools "
                "the model asked for belong to the pass that asked.")
TOKENS_HINT = ("copy each call's usage onto its own chat span: gen_ai.usage.input_tokens = "
               "completion.usage.prompt_tokens, gen_ai.usage.output_tokens = "
               "completion.usage.completion_tokens.")
COST_HINT = "set llm.cost.usd on each chat span to price(usage), the number the ledger keeps."
RETRY_HINT = ("a refused call must show: open the chat span inside the `for attempt` loop, and in "
              "the except clause set span.set_status(Status(StatusCode.ERROR, str(error))) and "
              "span.set_attribute(\"error.type\", type(error).__qualname__).")


def test_the_agent_loop_is_traced(run):
    """Two questions: one trace each, with iterations, model calls, tools, tokens, cost, retries."""
    model = run.app("model_server.py", name="model",
                    env={"TQ_MODEL_RATE_LIMIT_EVERY": str(RATE_LIMIT_EVERY),
                         "TQ_MODEL_RETRY_AFTER": "100ms", "TQ_MODEL_TOKEN_LATENCY": "1ms"})
    helpdesk = run.app("app.py", name="helpdesk", env={"MODEL_URL": model.url})
    run.start()
    answers = [_ask(helpdesk, question) for question, _, _ in QUESTIONS]
    traces = run.traces()

    requests = select(traces, kind="SERVER", name="GET /ask").named("request spans 'GET /ask'")
    requests.expect_count(exactly=len(QUESTIONS), hint="telemetry.py and app.py set those up; "
                                                       "undo any change you made there.")
    for request, answer, (question, iterations, tool_calls) in zip(
            sorted(requests.each(), key=lambda r: r.spans[0].start_ns), answers, QUESTIONS):
        _check_one_question(request, answer, question, iterations, tool_calls)
    _check_retries(select(traces, attributes={"gen_ai.operation.name": "chat"}))


def _check_one_question(request, answer, question, iterations, tool_calls):
    loop = request.descendants(name="agent iteration").named(
        f"'agent iteration' spans under the request for {question!r}")
    loop.expect_count(exactly=iterations, hint=ITERATION_HINT)
    numbers = sorted(s.attributes.get("agent.iteration") for s in loop)
    if numbers != list(range(1, iterations + 1)):
        fail(f"agent.iteration = 1, 2, ... {iterations} on the iterations of {question!r}",
             f"agent.iteration is {numbers}.", ITERATION_HINT, trace=loop.traces[0])

    chats = request.descendants(attributes={"gen_ai.operation.name": "chat"}).named(
        f"model-call spans (gen_ai.operation.name = chat) of {question!r}")
    chats.expect_count(at_least=1, hint=_names_hint(request) or CHAT_HINT)
    answered = chats.matching(lambda s: s.status != "ERROR", "that did not fail").named(
        f"answered model-call spans of {question!r}")
    # More answered-looking spans than calls in the ledger: the refused attempts do not say so.
    extra = len(answered) > len(answer["calls"])
    answered.expect_count(exactly=len(answer["calls"]), hint=RETRY_HINT if extra else CHAT_HINT)
    answered.expect_child_of(loop, hint="open the chat span while the iteration's span is current: "
                                        "call call_model() inside the iteration's `with` block.")
    hint = _names_hint(request)
    for key, value in (("gen_ai.provider.name", "openai"), ("gen_ai.request.model", MODEL)):
        answered.expect_attribute(key, equals=value, hint=hint or CHAT_HINT)
    for span, call in zip(answered.each(), answer["calls"]):
        span.expect_attribute("gen_ai.response.model", equals=call["model"],
                              hint="gen_ai.response.model is completion.model, the version that "
                                   "answered (the request names only tq-mini).")
        for key, field in zip(USAGE, ("input_tokens", "output_tokens")):
            span.expect_attribute(key, equals=call[field], hint=_tokens_hint(request) or hint or TOKENS_HINT)
        span.expect_attribute("gen_ai.response.finish_reasons", equals=_reasons(call["finish_reason"]),
                              hint=hint or "gen_ai.response.finish_reasons is a list: "
                                           "[completion.choices[0].finish_reason].")
        span.expect_attribute("llm.cost.usd", equals=_dollars(call["cost_usd"]),
                              hint=_cost_hint(request) or COST_HINT)
    others = request.descendants().matching(
        lambda s: s.attributes.get("gen_ai.operation.name") != "chat", "that are no model call")
    for key in (*USAGE, "llm.cost.usd"):
        for spans in (request, others):
            spans.named(f"the request for {question!r} and its spans other than model calls") \
                .expect_no_attribute(key, hint="tokens and cost belong to the call that used them; "
                                               "copies elsewhere count them twice in a sum.")

    total = sum(s.attributes["llm.cost.usd"] for s in answered)
    if not math.isclose(total, answer["cost_usd"], abs_tol=1e-9):
        fail(f"the cost summed over the spans of {question!r} to equal the ledger's "
             f"${answer['cost_usd']:.7f}", f"the spans add up to ${total:.7f}.", COST_HINT,
             trace=request.traces[0])

    tools = request.descendants(name=re.compile(r"execute_tool .+")).named(
        f"execute_tool spans of {question!r}")
    tools.expect_count(exactly=tool_calls, hint=TOOL_HINT)
    tools.expect_attribute("gen_ai.operation.name", equals="execute_tool", hint=TOOL_HINT)
    tools.expect_attribute("gen_ai.tool.name", equals=_tool_named, hint=TOOL_HINT)
    tools.expect_child_of(loop, hint=SIBLING_HINT)


def _check_retries(chats):
    refused = chats.where(status="ERROR").named("refused model calls (status ERROR)")
    refused.expect_count(exactly=REFUSED, hint=RETRY_HINT)
    refused.expect_attribute("error.type", equals=ANY, hint=RETRY_HINT)
    for span in refused:
        siblings = [s for s in span.parent.children if s.attributes.get("gen_ai.operation.name") == "chat"
                    and s.status != "ERROR" and s.start_ns >= span.end_ns] if span.parent else []
        if not siblings:
            fail("each refused model call to be followed by its retry, under the same iteration",
                 f"the refused '{span.name}' has no later answered call beside it.", RETRY_HINT,
                 trace=chats.traces[0])


def _ask(helpdesk, question):
    answer = helpdesk.get("/ask", params={"question": question, "customer": "123"})
    if answer.status_code != 200:
        fail(f"GET /ask?question={question} to answer 200", f"it answered {answer.status_code}.",
             "run python model_server.py and python app.py, open that URL, and read the error.",
             details=helpdesk.tail())
    return answer.json()


def _names_hint(request):
    """Old GenAI attribute names anywhere in the trace: say which new names replace them."""
    found = sorted({k for s in request.traces[0] for k in s.attributes if k in OLD_NAMES})
    if not found:
        return ""
    renames = ", ".join(f"{old} -> {OLD_NAMES[old]}" for old in found)
    return (f"the trace uses old GenAI attribute names; the current semantic conventions say "
            f"{renames}, and gen_ai.operation.name = \"chat\" on each model call.")


def _tokens_hint(request):
    holders = sorted({s.name for s in request.traces[0] for k in USAGE if k in s.attributes
                      and s.attributes.get("gen_ai.operation.name") != "chat"})
    if holders:
        return (f"the token counts are on {', '.join(repr(h) for h in holders)}, not on the model "
                f"calls: {TOKENS_HINT}")
    return ""


def _cost_hint(request):
    holders = sorted({s.name for s in request.traces[0] if "llm.cost.usd" in s.attributes
                      and s.attributes.get("gen_ai.operation.name") != "chat"})
    if holders:
        return (f"the cost is recorded once, on {', '.join(repr(h) for h in holders)}: price each "
                f"call on its own span, so a retry or an extra iteration shows where its money went. "
                f"{COST_HINT}")
    return ""


def _reasons(expected):
    def test(value):
        return isinstance(value, (list, tuple)) and list(value) == [expected]
    test.__name__ = f"[{expected!r}]"
    return test


def _dollars(expected):
    def test(value):
        return isinstance(value, (int, float)) and math.isclose(value, expected, abs_tol=1e-9)
    test.__name__ = f"{expected} (the ledger's price of that call)"
    return test


def _tool_named(value):
    return value in ("lookup_customer", "find_drivers", "route_eta")


_tool_named.__name__ = "the tool's name (lookup_customer, find_drivers or route_eta)"
