"""The mystery of quest 03: a seed picks one culprit and makes it slow, and one behind the assistant.

With ``TQ_MYSTERY=<seed>`` in its environment, each service reads its flags as
this module says. The seed picks one culprit from ``CULPRITS``: the same seed
always picks the same culprit, and neighbouring seeds pick different ones.

So that exactly one (service, span name) holds most of the time, the rest of
the demo is made quiet: HotROD's usual problems are fixed (a fast database,
no connection lock, ten route workers, no Redis timeouts) and the route
calculation is shortened. The culprit then undoes one of those, or turns up a
latency of its own.

A mystery only chooses values for ordinary knobs, named as ``knobs.py`` names
them, so a typo fails at import. It wins over their environment twins, so a
stray ``TQ_*`` variable in a learner's shell cannot blur the puzzle; the
command line still wins over everything.
"""

from dataclasses import dataclass

from services.common.knobs import KnobError, knob

ENV = "TQ_MYSTERY"


def _by_twin(settings, reader=None):
    """Knob settings (by knob name or twin) → {environment twin: value}.

    Each name is looked up in the knob table and each value parsed by its knob,
    so a misspelt name or value fails at import, in every test, not in a mystery
    whose culprit silently never appears. With `reader`, each knob must be one
    that service reads.
    """
    env = {}
    for name, value in settings:
        k = knob(name)
        k.parse(value)
        if reader is not None and reader not in k.readers:
            raise KnobError(f"mystery setting {k.name} is not read by the {reader} service")
        env[k.env] = value
    return env


# The demo with its usual problems fixed: little time is spent anywhere.
QUIET = _by_twin((
    ("fix-db-query-delay", "5ms"),
    ("fix-disable-db-conn-mutex", "1"),
    ("fix-route-worker-pool-size", "10"),
    ("redis-error-rate", "0"),
    ("route-calc-delay", "5ms"),
))


@dataclass(frozen=True)
class Culprit:
    """One injected problem: the span its time lands in, and the knobs that cause it."""

    kind: str  # what goes wrong, in a few words
    service: str  # where the time lands: the answer to the mystery
    operation: str
    settings: tuple  # (knob name, value) pairs laid over QUIET

    def __post_init__(self):
        _by_twin(self.settings, self.service)  # a misspelt knob fails at import

    @property
    def env(self):
        """The culprit's settings by environment twin."""
        return _by_twin(self.settings, self.service)

    @property
    def answer(self):
        return (self.service, self.operation)


CULPRITS = (
    Culprit("slow SQL query", "customer", "SELECT",
            (("fix-db-query-delay", "800ms"),)),
    # Shows only under concurrent load: requests queue for the connection
    # inside the server span, before any SQL starts.
    Culprit("lock contention", "customer", "GET /customer",
            (("fix-db-query-delay", "300ms"), ("fix-disable-db-conn-mutex", "0"))),
    Culprit("slow Redis lookup", "driver", "FindDriverIDs",
            (("redis-find-delay", "800ms"),)),
    Culprit("retry storm", "driver", "GetDriver",
            (("redis-error-rate", "0.6"), ("redis-timeout", "100ms"))),
    Culprit("slow route computation", "route", "compute route",
            (("route-calc-delay", "150ms"),)),
    Culprit("slow payment provider", "frontend", "authorize payment",
            (("payment-delay", "800ms"),)),
)


def culprit_for(seed):
    """The culprit a seed picks; seeds next to each other never pick the same one."""
    return CULPRITS[seed % len(CULPRITS)]


def settings_for(seed):
    """Knob values (by environment twin) for the mystery with this seed.

    The seed also seeds the demo's random numbers, so a mystery behaves
    much the same way every time it runs. The assistant's culprit (below)
    comes with it; it touches only the model server's knobs.
    """
    return {**QUIET, knob("seed").env: str(seed), **culprit_for(seed).env,
            **ASSISTANT_QUIET, **assistant_culprit_for(seed).env}


# --- the assistant's culprits ------------------------------------------------------
#
# Every mystery has two halves, and quest 03 judges both: the /dispatch traces (the
# slow span, CULPRITS above, whose seed -> culprit mapping stays as it was) and the
# assistant's traces. The assistant draws a culprit of its own from the same seed:
# with a mystery on, a question to the assistant is slow, or never answered, for a
# reason the traces show. Its knobs are read by the model server, which has no spans
# of its own (it stands for a hosted provider), so the trouble shows in the
# assistant's spans: `service` and `operation` are the answer, `sign` how it shows.
# The check reads the answer from the traces alone (tracequest/quests/mystery_assistant.py):
# the agent span when the agent gives up, else the assistant's operation holding the
# most self time.


@dataclass(frozen=True)
class AssistantCulprit:
    """An injected problem behind the assistant: where it shows, and the knobs that cause it."""

    kind: str
    service: str  # where it shows in the trace: the answer
    operation: str
    reader: str  # the program whose knobs cause it
    settings: tuple  # (knob name, value) pairs laid over ASSISTANT_QUIET
    sign: str  # what gives it away in a trace

    def __post_init__(self):
        _by_twin(self.settings, self.reader)  # a misspelt knob fails at import

    @property
    def env(self):
        return _by_twin(self.settings, self.reader)

    @property
    def answer(self):
        return (self.service, self.operation)


# A quick model, so that only the culprit stands out.
ASSISTANT_QUIET = _by_twin((
    ("model-first-token-delay", "5ms"),
    ("model-token-latency", "1ms"),
    ("model-tool-loop", "off"),
), "model")

ASSISTANT_CULPRITS = (
    # 8 ms a token: a question's model calls hold 2-3 s, well above any slow /dispatch
    # culprit its tools meet (an 800 ms query, say).
    AssistantCulprit("slow model server", "assistant", "chat tq-mini", "model",
                     (("model-token-latency", "8ms"),),
                     "the model calls hold most of the assistant's self time"),
    AssistantCulprit("a loop that runs too long", "assistant", "invoke_agent dispatch-helper", "model",
                     (("model-tool-loop", "on"),),
                     "the agent runs into its iteration cap and ends in error"),
)


def assistant_culprit_for(seed):
    """The assistant's culprit for a seed; seeds next to each other never pick the same one."""
    return ASSISTANT_CULPRITS[seed % len(ASSISTANT_CULPRITS)]
