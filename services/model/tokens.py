"""Counting tokens the way the model server bills them.

A real tokenizer splits text into sub-word pieces; this one counts words and
punctuation marks. That is close enough to show a context that grows with each
iteration, and simple enough that anyone can count a prompt by hand.
"""

import json
import re

_TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 3  # role and separators, as chat formats add per message
CACHE_BLOCK = 64  # a prompt cache stores whole blocks of this many tokens


def count(text):
    """Tokens in a text (or in the JSON of any other value)."""
    if text is None:
        return 0
    if not isinstance(text, str):
        text = json.dumps(text, sort_keys=True)
    return len(_TOKEN.findall(text))


def cut(text, limit):
    """The text up to the end of its `limit`-th token: an answer truncated at max tokens."""
    ends = [m.end() for m in _TOKEN.finditer(text)]
    return text if len(ends) <= limit else text[:ends[limit - 1]] if limit else ""


def message_tokens(message):
    return (MESSAGE_OVERHEAD + count(message.get("role")) + count(message.get("content"))
            + count(message.get("tool_calls")) + count(message.get("tool_call_id")))


def prompt_tokens(messages, tools):
    """Tokens of the whole prompt: every message, and the tool definitions once."""
    return (count(tools) if tools else 0) + sum(message_tokens(m) for m in messages)


def cached_tokens(messages, tools):
    """Prompt tokens served from the prompt cache.

    An agent resends its whole conversation each iteration, so everything the
    previous request already sent (the messages before the last answer of the
    assistant) is a prefix the server has seen; it is cached in whole blocks.
    """
    last_answer = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"),
                      default=None)
    if last_answer is None:
        return 0
    seen = prompt_tokens(messages[:last_answer], tools)
    return seen // CACHE_BLOCK * CACHE_BLOCK
