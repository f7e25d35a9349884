"""A stand-in for Redis: a dictionary of drivers, and one key that always times out.

It keeps the quest self-contained: no Redis server to install, and a failure
that happens every time you ask for it (driver T13), so the check is exact.
"""

import time

DRIVERS = {
    f"driver:T{n}": {"id": f"T{n}", "plate": f"TQ-{1000 + 37 * n}", "rating": 4 + (n % 10) / 10}
    for n in range(1, 51)
}
UNREACHABLE = {"driver:T13"}
TIMEOUT = 0.05


class RedisTimeout(TimeoutError):
    """The cache did not answer in time."""


def get(key: str) -> dict | None:
    if key in UNREACHABLE:
        time.sleep(TIMEOUT)
        raise RedisTimeout(f"GET {key} timed out after {TIMEOUT * 1000:.0f}ms")
    time.sleep(0.005)
    return DRIVERS.get(key)
