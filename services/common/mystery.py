"""The slow-span mystery of quest 03: a seed picks one culprit and makes it slow.

With ``TQ_MYSTERY=<seed>`` in its environment, each service reads its flags as
this module says. The seed picks one culprit from ``CULPRITS``: the same seed
always picks the same culprit, and neighbouring seeds pick different ones.

So that exactly one (service, span name) holds most of the time, the rest of
the demo is made quiet: HotROD's usual problems are fixed (a fast database,
no connection lock, ten route workers, no Redis timeouts) and the route
calculation is shortened. The culprit then undoes one of those, or turns up a
latency of its own.

A mystery only chooses values for ordinary flags (see ``config.py``). It wins
over their environment twins, so a stray ``TQ_*`` variable in a learner's
shell cannot blur the puzzle; the command line still wins over everything.
"""

from dataclasses import dataclass

ENV = "TQ_MYSTERY"

# The demo with its usual problems fixed: little time is spent anywhere.
QUIET = {
    "TQ_FIX_DB_QUERY_DELAY": "5ms",
    "TQ_FIX_DISABLE_DB_CONN_MUTEX": "1",
    "TQ_FIX_ROUTE_WORKER_POOL_SIZE": "10",
    "TQ_REDIS_ERROR_RATE": "0",
    "TQ_ROUTE_CALC_DELAY": "5ms",
}


@dataclass(frozen=True)
class Culprit:
    """One injected problem: the span its time lands in, and the flags that cause it."""

    kind: str  # what goes wrong, in a few words
    service: str  # where the time lands: the answer to the mystery
    operation: str
    settings: tuple  # (env twin, value) pairs laid over QUIET

    @property
    def answer(self):
        return (self.service, self.operation)


CULPRITS = (
    Culprit("slow SQL query", "customer", "SELECT",
            (("TQ_FIX_DB_QUERY_DELAY", "800ms"),)),
    # Shows only under concurrent load: requests queue for the connection
    # inside the server span, before any SQL starts.
    Culprit("lock contention", "customer", "GET /customer",
            (("TQ_FIX_DB_QUERY_DELAY", "300ms"), ("TQ_FIX_DISABLE_DB_CONN_MUTEX", "0"))),
    Culprit("slow Redis lookup", "driver", "FindDriverIDs",
            (("TQ_REDIS_FIND_DELAY", "800ms"),)),
    Culprit("retry storm", "driver", "GetDriver",
            (("TQ_REDIS_ERROR_RATE", "0.6"), ("TQ_REDIS_TIMEOUT", "100ms"))),
    Culprit("slow route computation", "route", "compute route",
            (("TQ_ROUTE_CALC_DELAY", "150ms"),)),
    Culprit("slow payment provider", "frontend", "authorize payment",
            (("TQ_PAYMENT_DELAY", "800ms"),)),
)


def culprit_for(seed):
    """The culprit a seed picks; seeds next to each other never pick the same one."""
    return CULPRITS[seed % len(CULPRITS)]


def settings_for(seed):
    """Flag values (by environment twin) for the mystery with this seed.

    The seed also seeds the demo's random numbers, so a mystery behaves
    much the same way every time it runs.
    """
    return {**QUIET, "TQ_SEED": str(seed), **dict(culprit_for(seed).settings)}
