"""Simulated latency for the pretend databases and computations.

Real backends never answer in exactly the same time, and a trace where every
span has the same length looks fake, so each delay varies around its mean.
"""

import time

from services.common import config
from services.common.randomness import rng


def jittered(mean, jitter=config.DELAY_JITTER):
    """Return a duration within +/- `jitter` (a fraction) of `mean` seconds."""
    return max(0.0, rng.uniform(mean * (1 - jitter), mean * (1 + jitter)))


def sleep(mean, jitter=config.DELAY_JITTER):
    """Sleep around `mean` seconds and return how long the sleep was meant to be."""
    duration = jittered(mean, jitter)
    time.sleep(duration)
    return duration
