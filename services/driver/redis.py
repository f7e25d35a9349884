"""A pretend Redis that knows which drivers are where.

It answers after a short delay and, now and then, not at all: a read times
out at the rate set by ``--redis-error-rate``, after ``--redis-timeout``.
Looking up the nearby drivers takes ``--redis-find-delay``, reading one driver
``--redis-get-delay``. There is no Redis client library to instrument, so the
spans are made by hand, shaped like the spans a real Redis instrumentation
would make (CLIENT kind, ``db.*`` attributes).

``--regression-error-without-exception`` (quest 12) breaks the error spans: a
timeout still ends its span in error, but no longer records the exception.
"""

import logging
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common import config, delay
from services.common.location import Location
from services.common.randomness import rng

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# Drivers are spread this far (in map units) around the place asked about.
SPREAD = 100


class RedisTimeout(Exception):
    """A simulated Redis read that got no answer in time."""


@dataclass
class Driver:
    driver_id: str
    location: str


def _random_driver_id():
    return f"T7{rng.randint(0, 99999):05d}C"


def _redis_attributes(operation, query):
    return {"db.system.name": "redis", "db.operation.name": operation, "db.query.text": query}


class Redis:
    """Driver ids by place, and each driver's position, behind a slow and flaky connection."""

    def __init__(self, error_rate=config.default("redis-error-rate"),
                 find_delay=config.default("redis-find-delay"),
                 timeout=config.default("redis-timeout"),
                 get_delay=config.default("redis-get-delay"),
                 record_exceptions=not config.default("regression-error-without-exception")):
        self.error_rate = error_rate
        self.find_delay = find_delay
        self.timeout = timeout
        self.get_delay = get_delay
        self.record_exceptions = record_exceptions

    def find_driver_ids(self, location):
        """Return the ids of the drivers near `location`."""
        attributes = _redis_attributes("SMEMBERS", f"SMEMBERS drivers:near:{location}")
        with tracer.start_as_current_span(
            "FindDriverIDs", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            delay.sleep(self.find_delay)
            driver_ids = [_random_driver_id() for _ in range(config.NEARBY_DRIVERS)]
            span.set_attribute("db.response.returned_rows", len(driver_ids))
        logger.info("found %d drivers near %s", len(driver_ids), location)
        return driver_ids

    def get_driver(self, driver_id, near, attempt=1):
        """Return one Driver, placed somewhere around `near`; may raise RedisTimeout."""
        attributes = _redis_attributes("HGETALL", f"HGETALL driver:{driver_id}")
        attributes.update({"driver.id": driver_id, "retry.attempt": attempt})
        # The failure is recorded below by hand, to show how; the SDK must not record it twice.
        with tracer.start_as_current_span(
            "GetDriver", kind=SpanKind.CLIENT, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            if rng.random() < self.error_rate:
                delay.sleep(self.timeout)
                error = RedisTimeout(f"redis timeout reading driver {driver_id}")
                if self.record_exceptions:
                    span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                raise error
            delay.sleep(self.get_delay)
            position = Location(max(0, near.x + rng.randint(-SPREAD, SPREAD)),
                                max(0, near.y + rng.randint(-SPREAD, SPREAD)))
        return Driver(driver_id, str(position))
