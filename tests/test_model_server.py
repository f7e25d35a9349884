"""The model server, for real: a process on a free port, asked through the real openai client.

It must be an honest stand-in for a hosted model: the same conversation gets
the same answer and usage; usage counts what was sent (and what the cache
held); latency grows with tokens; and each failure knob fails the way the
OpenAI API does (429 with retry-after, finish_reason=length, a loop).
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import requests

from services.assistant.domain import SYSTEM_PROMPT, TOOLS
from services.model import tokens
from services.model.client import MODEL, openai_client
from tracequest.host import procs
from tracequest.host.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def model_server(tmp_path, *flags):
    port = free_port()
    child = procs.start("model", [sys.executable, "-m", "services.model", "--port", str(port), *flags],
                        tmp_path / f"model-{port}.log", env=procs.environment(), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert child.wait_ready(lambda: procs.answers_http(f"{url}/health"), 30), child.tail()
        yield url
    finally:
        child.terminate()
        child.wait_stopped(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with model_server(tmp_path_factory.mktemp("model")) as url:
        yield url


def conversation(question, customer="123"):
    return [{"role": "system", "content": f"{SYSTEM_PROMPT} The customer id is {customer}."},
            {"role": "user", "content": question}]


def ask(url, messages, **extra):
    return openai_client(url).chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,
                                                      **extra)


def test_a_question_about_a_late_driver_asks_for_the_customer_first(server):
    first = ask(server, conversation("why is my driver late?"))
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "lookup_customer"
    assert json.loads(call.function.arguments) == {"customer_id": "123"}
    assert first.model == "tq-mini-2026-01-15"


def test_the_same_conversation_gets_the_same_answer_and_usage(server):
    messages = conversation("which drivers are near me?")
    one, two = ask(server, messages), ask(server, messages)
    assert one.id == two.id and one.usage == two.usage
    assert one.choices[0].message == two.choices[0].message


def test_usage_counts_the_prompt_and_the_answer(server):
    messages = conversation("hello")
    answer = ask(server, messages)
    usage = answer.usage
    assert usage.prompt_tokens == tokens.prompt_tokens(messages, TOOLS) > 0
    assert usage.completion_tokens == tokens.count(answer.choices[0].message.content) > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0  # nothing was sent before
    without_tools = openai_client(server).chat.completions.create(model=MODEL, messages=messages)
    assert without_tools.usage.prompt_tokens == usage.prompt_tokens - tokens.count(TOOLS)


def test_a_longer_conversation_reads_its_earlier_prefix_from_the_cache(server):
    messages = conversation("why is my driver late?")
    first = ask(server, messages)
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": first.choices[0].message.tool_calls[0].id,
                     "content": json.dumps({"id": 123, "name": "Rachel", "location": "115,277"})})
    second = ask(server, messages)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    assert 0 < cached <= first.usage.prompt_tokens and cached % tokens.CACHE_BLOCK == 0
    assert second.choices[0].message.tool_calls[0].function.name == "find_drivers"


def test_an_unknown_model_and_a_bad_body_are_refused_as_openai_does(server):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        openai_client(server).chat.completions.create(model="gpt-9", messages=conversation("hi"))
    response = requests.post(f"{server}/v1/chat/completions", json={"model": MODEL, "messages": []},
                             timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_latency_grows_with_the_tokens_written(tmp_path):
    with model_server(tmp_path, "--model-token-latency", "20ms", "--model-first-token-delay", "0s") as url:
        short = timed(lambda: ask(url, conversation("hello")))
        long = timed(lambda: ask(url, conversation("why is my driver late?")))
        tool_tokens, answer_tokens = long[1].usage.completion_tokens, short[1].usage.completion_tokens
        assert short[0] >= answer_tokens * 0.020
        assert long[0] >= tool_tokens * 0.020
    with model_server(tmp_path, "--model-first-token-delay", "600ms") as slow:
        assert timed(lambda: ask(slow, conversation("hello")))[0] >= 0.6


def timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def test_rate_limiting_answers_429_with_a_retry_after(tmp_path):
    with model_server(tmp_path, "--model-rate-limit-every", "2", "--model-retry-after", "300ms") as url:
        ask(url, conversation("hello"))
        with pytest.raises(openai.RateLimitError) as limited:
            ask(url, conversation("hello"))
        headers = limited.value.response.headers
        assert headers["retry-after-ms"] == "300" and headers["retry-after"] == "1"
        assert limited.value.code == "rate_limit_exceeded"
        ask(url, conversation("hello"))  # the third goes through again


def test_an_answer_longer_than_the_limit_is_cut_with_finish_reason_length(tmp_path):
    with model_server(tmp_path, "--model-max-output-tokens", "5") as url:
        answer = ask(url, conversation("hello"))
        assert answer.choices[0].finish_reason == "length"
        assert answer.usage.completion_tokens == 5
        assert tokens.count(answer.choices[0].message.content) == 5
    with model_server(tmp_path) as url:  # the request's own max_tokens works the same way
        answer = ask(url, conversation("hello"), max_tokens=3)
        assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 3


def test_the_tool_loop_never_converges(tmp_path):
    with model_server(tmp_path, "--model-tool-loop") as url:
        messages = conversation("hello")
        for _ in range(5):
            reply = ask(url, messages).choices[0]
            assert reply.finish_reason == "tool_calls"
            call = reply.message.tool_calls[0]
            messages += [reply.message.model_dump(exclude_none=True),
                         {"role": "tool", "tool_call_id": call.id, "content": "[]"}]
