"""The assistant, for real: one POST /ask is one whole trace of the agent loop.

The lab runs every service as a process (the model server too); the spans come
back through the query API. One question must give one trace with no orphans:
the assistant's server span, the agent span, one span per iteration, one
model call per iteration carrying the GenAI attributes and the server's usage,
one execute_tool span per tool call, and under each tool the customer, driver
or route spans it caused. The failure knobs must show as the lab teaches them:
a rate-limited call as an error span followed by its retry, a loop cut off at
the iteration cap.
"""

from __future__ import annotations

import json

import pytest
import requests

from services.assistant.domain import Prices
from tracequest.traces.client import QueryClient
from tracequest.lab import Lab, LabSettings
from tracequest.host.ports import Ports

TOOL_SERVICE = {"lookup_customer": "customer", "find_drivers": "driver", "route_eta": "route"}
CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments",
                "gen_ai.tool.call.result")


def ask(lab, question, customer="123"):
    response = requests.post(f"{lab.url('assistant')}/ask",
                             json={"question": question, "customer": customer}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def trace_of(lab, answer, min_spans=1):
    return QueryClient(lab.query_url).wait_for_trace(answer["trace_id"], min_spans=min_spans)


def iterations(trace):
    agent = trace.find(name="invoke_agent dispatch-helper", service="assistant")
    assert len(agent) == 1
    loop = [s for s in agent[0].children if s.name == "agent iteration"]
    return sorted(loop, key=lambda s: s.attributes["agent.iteration"])


def chats(iteration):
    return [s for s in iteration.children if s.attributes.get("gen_ai.operation.name") == "chat"]


def tools(iteration):
    return [s for s in iteration.children if s.name.startswith("execute_tool ")]


def descendants(span):
    for child in span.children:
        yield child
        yield from descendants(child)


@pytest.fixture(scope="module")
def late(lab):
    answer = ask(lab, "why is my driver late?")
    return answer, trace_of(lab, answer, min_spans=30)


def test_one_question_is_one_whole_trace(late):
    answer, trace = late
    assert len(trace.roots) == 1 and trace.orphans == []
    assert trace.root.service == "assistant" and trace.root.name == "POST /ask"
    assert trace.root.kind == "SERVER"
    assert set(trace.services) == {"assistant", "customer", "driver", "route"}
    agent = trace.find(name="invoke_agent dispatch-helper")[0]
    assert agent.parent is trace.root
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["agent.iterations"] == answer["iterations"] == 4


def test_each_iteration_holds_one_model_call_and_its_tools(late):
    answer, trace = late
    loop = iterations(trace)
    assert [s.attributes["agent.iteration"] for s in loop] == [1, 2, 3, 4]
    called = [[t.attributes["gen_ai.tool.name"] for t in tools(s)] for s in loop]
    assert called == [["lookup_customer"], ["find_drivers"], ["route_eta", "route_eta"], []]
    for iteration in loop:
        [chat] = chats(iteration)
        assert chat.kind == "CLIENT" and chat.name == "chat tq-mini"
        for tool in tools(iteration):
            assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
            assert tool.attributes["gen_ai.tool.call.id"]
            caused = {s.service for s in descendants(tool)}
            assert TOOL_SERVICE[tool.attributes["gen_ai.tool.name"]] in caused
            assert tool.start_ns >= chat.end_ns  # a tool runs after the model asked for it


def test_model_calls_carry_the_genai_attributes_and_the_servers_usage(late):
    answer, trace = late
    loop = iterations(trace)
    for call, iteration in zip(answer["calls"], loop, strict=True):
        attributes = chats(iteration)[0].attributes
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == "tq-mini"
        assert attributes["gen_ai.response.model"] == call["model"] == "tq-mini-2026-01-15"
        assert attributes["gen_ai.usage.input_tokens"] == call["input_tokens"]
        assert attributes["gen_ai.usage.output_tokens"] == call["output_tokens"]
        assert list(attributes["gen_ai.response.finish_reasons"]) == [call["finish_reason"]]
        assert iteration.attributes["gen_ai.usage.cache_read.input_tokens"] == call["cached_tokens"]
    inputs = [c["input_tokens"] for c in answer["calls"]]
    assert inputs == sorted(inputs) and inputs[0] < inputs[-1]  # the context grows
    assert [c["finish_reason"] for c in answer["calls"]] == ["tool_calls"] * 3 + ["stop"]


def test_cost_summed_from_the_spans_equals_the_agents_ledger(late):
    answer, trace = late
    spans = sum(s.attributes["llm.cost.usd"] for s in iterations(trace))
    assert spans == pytest.approx(answer["cost_usd"], abs=1e-12)
    prices = Prices()
    again = sum(sum(prices.cost(c["input_tokens"], c["cached_tokens"], c["output_tokens"]))
                for c in answer["calls"])
    assert again == pytest.approx(answer["cost_usd"], abs=1e-12) and answer["cost_usd"] > 0


def test_the_number_of_iterations_depends_on_the_question(lab):
    asked = {q: ask(lab, q) for q in ("hello", "which drivers are near me?", "when will my driver arrive?")}
    assert [a["iterations"] for a in asked.values()] == [1, 3, 4]
    assert "drivers near 115,277" in asked["which drivers are near me?"]["answer"]


def test_content_is_not_recorded_unless_asked_for(late):
    _, trace = late
    assert not [(s.name, k) for s in trace for k in CONTENT_KEYS if k in s.attributes]


def test_a_bad_question_is_refused_plainly(lab):
    response = requests.post(f"{lab.url('assistant')}/ask", json={"customer": "123"}, timeout=10)
    assert response.status_code == 400 and "missing 'question'" in response.json()["error"]


@pytest.fixture(scope="module")
def failing_lab(tmp_path_factory):
    """A lab whose model is rate-limited every second call and never stops asking for tools."""
    env = {"TQ_MODEL_RATE_LIMIT_EVERY": "2", "TQ_MODEL_RETRY_AFTER": "150ms", "TQ_MODEL_TOOL_LOOP": "on",
           "TQ_ASSISTANT_MAX_ITERATIONS": "3", "TQ_ASSISTANT_CAPTURE_CONTENT": "on"}
    lab = Lab(LabSettings(ports=Ports.free(), services=("customer", "driver", "route", "model", "assistant"),
                          service_env=env), tmp_path_factory.mktemp("failing"))
    lab.up(log=lambda *_: None)
    yield lab
    lab.down(log=lambda *_: None)


@pytest.fixture(scope="module")
def looping(failing_lab):
    answer = ask(failing_lab, "why is my driver late?")
    return answer, trace_of(failing_lab, answer, min_spans=15)


def test_a_loop_that_never_converges_is_cut_at_the_cap(looping):
    answer, trace = looping
    assert answer["stopped"] == "max_iterations" and answer["iterations"] == 3
    assert len(iterations(trace)) == 3 and trace.orphans == []
    agent = trace.find(name="invoke_agent dispatch-helper")[0]
    assert agent.status == "ERROR" and agent.attributes["error.type"] == "max_iterations"


def test_a_rate_limited_call_is_an_error_span_followed_by_its_retry(looping):
    answer, trace = looping
    assert answer["rate_limited"] == 2
    first, second, third = (chats(s) for s in iterations(trace))
    assert len(first) == 1 and first[0].status != "ERROR"
    for attempts in (second, third):
        refused, retried = sorted(attempts, key=lambda s: s.start_ns)
        assert refused.status == "ERROR" and retried.status != "ERROR"
        assert retried.start_ns - refused.end_ns >= 140_000_000  # it waited for retry-after
        assert "gen_ai.usage.input_tokens" not in refused.attributes


def test_content_is_recorded_when_opted_in(looping):
    _, trace = looping
    agent = trace.find(name="invoke_agent dispatch-helper")[0]
    assert "why is my driver late?" in agent.attributes["gen_ai.input.messages"]
    tool = next(s for s in trace if s.name.startswith("execute_tool "))
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"location": "100,100"}
    assert "gen_ai.tool.call.result" in tool.attributes


def test_the_page_asks_through_the_frontend_in_one_trace(lab):
    assert "Ask the assistant" in requests.get(lab.frontend_url, timeout=10).text
    response = requests.post(f"{lab.frontend_url}/ask", json={"question": "which drivers are near me?",
                                                              "customer": "392"},
                             headers={"X-Session-Id": "page-test"}, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["iterations"] == 3 and "577,322" in answer["answer"]
    trace = trace_of(lab, answer, min_spans=20)
    assert trace.root.service == "frontend" and trace.root.name == "POST /ask"
    assert len(trace.roots) == 1 and trace.orphans == []
    server = trace.find(service="assistant", kind="SERVER")[0]
    assert server.attributes["session.id"] == "page-test"  # baggage carried on
    assert server.attributes["customer.id"] == "392"
    refused = requests.post(f"{lab.frontend_url}/ask", json={"customer": "392"}, timeout=10)
    assert refused.status_code == 400 and "missing 'question'" in refused.json()["error"]


# --- the mystery's culprits behind the assistant ----------------------------------------

def test_the_dispatch_culprits_keep_their_seeds_and_the_assistant_has_its_own():
    from services.common.mystery import (ASSISTANT_CULPRITS, CULPRITS, assistant_culprit_for,
                                         culprit_for, settings_for)
    assert [c.kind for c in CULPRITS] == ["slow SQL query", "lock contention", "slow Redis lookup",
                                          "retry storm", "slow route computation", "slow payment provider"]
    assert [culprit_for(seed).kind for seed in range(6)] == [c.kind for c in CULPRITS]
    assert {assistant_culprit_for(seed) for seed in range(2)} == set(ASSISTANT_CULPRITS)
    for seed in range(-20, 100):
        assert assistant_culprit_for(seed) != assistant_culprit_for(seed + 1)
        env = settings_for(seed)
        assert env["TQ_SEED"] == str(seed)
        assert all(env[k] == v for k, v in culprit_for(seed).env.items())
        assert all(env[k] == v for k, v in assistant_culprit_for(seed).env.items())


def test_a_slow_model_culprit_holds_the_assistants_self_time(tmp_path):
    from services.common.mystery import ASSISTANT_CULPRITS
    from tracequest.quests.slow_span import slowest_operation

    seed = next(s for s in range(10) if ASSISTANT_CULPRITS[s % 2].kind == "slow model server")
    culprit = ASSISTANT_CULPRITS[seed % 2]
    lab = Lab(LabSettings(ports=Ports.free(), services=("customer", "driver", "route", "model", "assistant"),
                          service_env={"TQ_MYSTERY": str(seed)}), tmp_path)
    lab.up(log=lambda *_: None)
    try:
        answer = ask(lab, "why is my driver late?")
        trace = trace_of(lab, answer, min_spans=30)
        shown = requests.get(f"{lab.url('model')}/config", timeout=5).json()
    finally:
        lab.down(log=lambda *_: None)
    assert slowest_operation(trace) == culprit.answer == ("assistant", "chat tq-mini")
    assert "mystery" in shown and "flags" not in shown  # the knobs stay hidden
