"""The scripted "model": what it answers follows from the conversation alone.

It plays a dispatch help desk that knows three tools (``lookup_customer``,
``find_drivers``, ``route_eta``). Each turn it reads the whole conversation,
sees which tool results it already has, and either asks for the next tool or
writes the answer. The same conversation always gets the same reply, so an
agent's run is reproducible, and how many iterations a question takes depends
on the question, as with a real model:

- "why is my driver late?": customer, drivers, two routes, answer (4 calls);
- "when will my driver arrive?": customer, drivers, one route, answer (4 calls);
- "which drivers are near me?": customer, drivers, answer (3 calls);
- anything else: an answer straight away (1 call).

With ``tool_loop`` on it never converges: it asks for the drivers again and
again, and only the agent's iteration cap stops it.
"""

import json
import math
import re
from dataclasses import dataclass, field

CUSTOMER = re.compile(r"customer(?:\s+id)?\s*(?:is|:|#)?\s*(\d+)", re.IGNORECASE)
INTENTS = (  # (intent, words that ask for it), first match wins
    ("late", ("late", "delay", "slow", "waiting", "still not")),
    ("eta", ("when", "eta", "how long", "arrive", "where is")),
    ("drivers", ("driver", "near", "available")),
)
ROUTES_NEEDED = {"late": 2, "eta": 1, "drivers": 0}


@dataclass
class Reply:
    """One turn of the model: text, or tool calls (name, arguments)."""

    content: str | None = None
    tool_calls: list = field(default_factory=list)

    @property
    def finish_reason(self):
        return "tool_calls" if self.tool_calls else "stop"


def _text(message):
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def intent_of(question):
    lowered = question.lower()
    for intent, words in INTENTS:
        if any(word in lowered for word in words):
            return intent
    return "chat"


def tool_results(messages):
    """Results the conversation holds, by tool name, in the order they came back."""
    names = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call.get("id")] = call.get("function", {}).get("name")
    results = {}
    for message in messages:
        if message.get("role") == "tool":
            try:
                value = json.loads(_text(message))
            except ValueError:
                value = {"error": _text(message)}
            results.setdefault(names.get(message.get("tool_call_id")), []).append(value)
    return results


def _failed(results):
    for values in results.values():
        for value in values:
            if isinstance(value, dict) and value.get("error"):
                return value["error"]
    return None


def _minutes(seconds):
    return max(1, math.ceil(seconds / 60))


def reply(messages, offered_tools=(), tool_loop=False):
    """The model's next turn for a conversation (a list of chat messages as dicts)."""
    questions = [_text(m) for m in messages if m.get("role") == "user"]
    question = questions[-1] if questions else ""
    everything = " ".join(_text(m) for m in messages if m.get("role") in ("system", "user"))
    customer = CUSTOMER.search(everything)
    intent = intent_of(question)
    results = tool_results(messages)
    offered = set(offered_tools)

    if tool_loop and "find_drivers" in offered:
        return Reply(tool_calls=[("find_drivers", {"location": "100,100"})])
    if intent == "chat" or not offered:
        return Reply("I can help with your ride: ask me why your driver is late, when it "
                     "arrives, or which drivers are near you.")
    if customer is None:
        return Reply("Which customer are you? Tell me your customer id and I will look.")
    problem = _failed(results)
    if problem:
        return Reply(f"Sorry, I could not look that up just now ({problem}). Please try again.")
    if "lookup_customer" not in results:
        return Reply(tool_calls=[("lookup_customer", {"customer_id": customer.group(1)})])
    place = results["lookup_customer"][0]
    if "find_drivers" not in results:
        return Reply(tool_calls=[("find_drivers", {"location": place["location"]})])
    drivers = results["find_drivers"][0]
    if not drivers:
        return Reply(f"There are no drivers near {place['location']} right now, sorry.")
    wanted = min(ROUTES_NEEDED[intent], len(drivers))
    if wanted and "route_eta" not in results:
        return Reply(tool_calls=[("route_eta", {"pickup": d["location"], "dropoff": place["location"]})
                                 for d in drivers[:wanted]])
    return Reply(_answer(intent, place, drivers, results.get("route_eta", [])))


def _answer(intent, place, drivers, routes):
    name, where = place.get("name", "there"), place["location"]
    if intent == "drivers":
        return (f"There are {len(drivers)} drivers near {where}, {name}; the first is "
                f"{drivers[0]['driver_id']} at {drivers[0]['location']}.")
    etas = [(_minutes(r["eta_seconds"]), d["driver_id"]) for r, d in zip(routes, drivers)]
    best_minutes, best = min(etas)
    if intent == "eta":
        return f"Driver {best} can reach you at {where} in about {best_minutes} minutes, {name}."
    others = ", ".join(f"{d} is {m} minutes away" for m, d in etas)
    return (f"Sorry for the wait, {name}. I checked the drivers nearest to {where}: {others}. "
            f"{best} is the closest and should reach you in about {best_minutes} minutes.")
