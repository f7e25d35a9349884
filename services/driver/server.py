"""HTTP handlers of the driver service."""

import logging
from dataclasses import asdict

from services.common import config
from services.common.app import create_app as create_base_app
from services.common.app import query_arg
from services.common.location import parse_location
from services.driver.redis import Redis, RedisTimeout

logger = logging.getLogger(__name__)


def fetch_driver(redis, driver_id, near):
    """Read one driver, retrying timeouts; a driver that never answers is left out."""
    for attempt in range(1, config.REDIS_MAX_ATTEMPTS + 1):
        try:
            return redis.get_driver(driver_id, near, attempt)
        except RedisTimeout as error:
            logger.warning("%s (attempt %d of %d)", error, attempt, config.REDIS_MAX_ATTEMPTS)
    logger.error("giving up on driver %s after %d attempts", driver_id, config.REDIS_MAX_ATTEMPTS)
    return None


def create_app(settings):
    app = create_base_app(__name__, "driver", settings)
    redis = Redis(settings.redis_error_rate, settings.redis_find_delay, settings.redis_timeout,
                  settings.redis_get_delay,
                  record_exceptions=not settings.regression_error_without_exception)

    @app.get("/drivers")
    def find_nearest():
        location = query_arg("location", parse_location, " (x,y such as 115,277)")
        # One read after another, as HotROD does: the trace shows it as a long staircase.
        driver_ids = redis.find_driver_ids(location)
        found = [fetch_driver(redis, driver_id, location) for driver_id in driver_ids]
        drivers = [driver for driver in found if driver is not None]
        logger.info("returning %d drivers near %s", len(drivers), location)
        return [asdict(driver) for driver in drivers]

    return app
