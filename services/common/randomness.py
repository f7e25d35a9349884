"""The demo's own random numbers: delays, timeouts, traffic and driver ids.

They come from a generator of their own, never Python's global one:
OpenTelemetry draws trace and span ids from the global generator, so seeding
that (with --seed) would give every service the same span ids.
"""

import random

rng = random.Random()


def seed(value: int) -> None:
    """Make the simulated problems repeatable, run after run."""
    rng.seed(value)
