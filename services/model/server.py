"""HTTP handlers of the model server: the OpenAI chat-completions API, scripted.

Everything a hosted model does that shows in a trace is here and behind a
knob: latency that grows with the tokens read and written, a slow first
token, rate limiting (429 with ``retry-after``), answers cut at the token
limit (``finish_reason=length``) and a tool loop that never converges. The
server is deterministic: the same conversation gets the same answer and the
same ``usage`` every time.
"""

import hashlib
import itertools
import json
import logging
import math
import threading
import time

from flask import jsonify, request

from services.common.app import create_app as create_base_app
from services.model import script, tokens

logger = logging.getLogger(__name__)

# Model names callers may ask for, and the dated version that answers.
MODELS = {"tq-mini": "tq-mini-2026-01-15"}


def openai_error(status, message, kind, code, headers=None):
    """An error in the shape OpenAI's API answers, so client libraries raise the right class."""
    response = jsonify(error={"message": message, "type": kind, "param": None, "code": code})
    response.status_code = status
    response.headers.update(headers or {})
    return response


class RateLimiter:
    """Every `every`-th request is refused (0: none); a counter, so runs repeat exactly."""

    def __init__(self, every):
        self.every = every
        self._count = itertools.count(1)
        self._lock = threading.Lock()

    def refuses(self):
        with self._lock:
            number = next(self._count)
        return self.every > 0 and number % self.every == 0


def _tool_call(index, name, arguments, conversation_id):
    call_id = f"call_{conversation_id[:12]}_{index}"
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


def _limit(body, settings):
    """The answer's token limit: the request's max tokens, within the server's own."""
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    ceiling = settings.model_max_output_tokens
    return min(int(asked), ceiling) if isinstance(asked, int) and asked > 0 else ceiling


def complete(body, settings):
    """A chat.completion object for a request body, and the seconds it takes to write."""
    messages, tools = body["messages"], body.get("tools") or []
    offered = [t.get("function", {}).get("name") for t in tools]
    answer = script.reply(messages, offered, tool_loop=settings.model_tool_loop)
    digest = hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    message = {"role": "assistant", "content": answer.content, "refusal": None}
    finish_reason = answer.finish_reason
    if answer.tool_calls:
        message["tool_calls"] = [_tool_call(i, name, args, digest)
                                 for i, (name, args) in enumerate(answer.tool_calls)]
        written = tokens.count(message["tool_calls"])
    else:
        written = tokens.count(answer.content)
    limit = _limit(body, settings)
    if written > limit:  # cut: a truncated tool call is no tool call at all
        message["content"] = tokens.cut(answer.content or "", limit)
        message.pop("tool_calls", None)
        written, finish_reason = limit, "length"
    read = tokens.prompt_tokens(messages, tools)
    cached = tokens.cached_tokens(messages, tools)
    seconds = (settings.model_first_token_delay + read * settings.model_prompt_token_latency
               + written * settings.model_token_latency)
    completion = {
        "id": f"chatcmpl-{digest[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": MODELS[body["model"]], "system_fingerprint": "fp_tracequest",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason,
                     "logprobs": None}],
        "usage": {"prompt_tokens": read, "completion_tokens": written,
                  "total_tokens": read + written,
                  "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
    }
    return completion, seconds


def _bad_request(body):
    """What is wrong with a request body, in OpenAI's words, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("model") not in MODELS:
        return None  # answered as 404 below
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a non-empty list of message objects"
    if body.get("stream"):
        return "this model server does not stream; send stream=false"
    return None


def create_app(settings):
    app = create_base_app(__name__, "model", settings)
    limiter = RateLimiter(settings.model_rate_limit_every)

    @app.get("/v1/models")
    def list_models():
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "tracequest"}
                                           for name in MODELS]}

    @app.post("/v1/chat/completions")
    def chat_completions():
        body = request.get_json(silent=True)
        problem = _bad_request(body)
        if problem:
            return openai_error(400, problem, "invalid_request_error", None)
        if body["model"] not in MODELS:
            return openai_error(404, f"The model '{body['model']}' does not exist; this server has "
                                f"{', '.join(MODELS)}.", "invalid_request_error", "model_not_found")
        if limiter.refuses():
            wait = settings.model_retry_after
            headers = {"retry-after": str(max(1, math.ceil(wait))),
                       "retry-after-ms": str(round(wait * 1000))}
            return openai_error(429, f"Rate limit reached for {body['model']}; try again in "
                                f"{wait * 1000:.0f}ms.", "requests", "rate_limit_exceeded", headers)
        completion, seconds = complete(body, settings)
        time.sleep(seconds)  # the time to read the prompt and write the answer
        usage = completion["usage"]
        logger.info("answered in %.0f ms: %d prompt tokens (%d cached), %d completion tokens, %s",
                    seconds * 1000, usage["prompt_tokens"],
                    usage["prompt_tokens_details"]["cached_tokens"], usage["completion_tokens"],
                    completion["choices"][0]["finish_reason"])
        return completion

    return app
