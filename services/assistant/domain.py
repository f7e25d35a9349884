"""What the assistant knows: its prompt, its tools, and what each model call costs.

The price table is three knobs (``--price-input-tokens``, ...), in US dollars
per million tokens, as providers publish them. Prompt tokens read from the
provider's prompt cache are billed at the cached price, the rest at the input
price; answer tokens at the output price.
"""

from dataclasses import asdict, dataclass, field

from services.common import config

AGENT_NAME = "dispatch-helper"
PROVIDER = "openai"  # the API the model server speaks, as gen_ai.provider.name names it
SYSTEM_PROMPT = ("You are the help desk of a ride-dispatch service. Answer questions about a "
                 "customer's ride with the tools: look the customer up, find the drivers near "
                 "them, and ask the route service how long a driver needs.")


def _tool(name, description, **parameters):
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "required": list(parameters),
                       "properties": {p: {"type": "string", "description": d}
                                      for p, d in parameters.items()}}}}


TOOLS = [
    _tool("lookup_customer", "The customer's name and where they wait for their ride.",
          customer_id="the customer's id, such as 123"),
    _tool("find_drivers", "Drivers near a place on the map.",
          location="x,y on the map, such as 115,277"),
    _tool("route_eta", "Seconds a driver needs from pickup to dropoff.",
          pickup="x,y where the driver is", dropoff="x,y where the customer waits"),
]


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens."""

    input: float = config.default("price-input-tokens")
    cached_input: float = config.default("price-cached-input-tokens")
    output: float = config.default("price-output-tokens")

    def cost(self, input_tokens, cached_tokens, output_tokens):
        """(input cost, output cost) of one call, in dollars, rounded to a nano-dollar."""
        fresh = input_tokens - cached_tokens
        input_cost = (fresh * self.input + cached_tokens * self.cached_input) / 1e6
        return round(input_cost, 9), round(output_tokens * self.output / 1e6, 9)


@dataclass
class Call:
    """One answered model call, as the agent's own ledger records it."""

    iteration: int
    model: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    finish_reason: str
    input_cost_usd: float
    output_cost_usd: float

    @property
    def cost_usd(self):
        return round(self.input_cost_usd + self.output_cost_usd, 9)


@dataclass
class Ledger:
    """Every model call of one question and what it cost: the agent's own account."""

    calls: list = field(default_factory=list)
    rate_limited: int = 0

    def add(self, call):
        self.calls.append(call)

    def totals(self):
        return {"input_tokens": sum(c.input_tokens for c in self.calls),
                "cached_tokens": sum(c.cached_tokens for c in self.calls),
                "output_tokens": sum(c.output_tokens for c in self.calls),
                "cost_usd": round(sum(c.cost_usd for c in self.calls), 9)}

    def as_json(self):
        return [{**asdict(c), "cost_usd": c.cost_usd} for c in self.calls]
