"""Dispatch: find the driver who can reach a customer first.

This is the business logic HotROD's frontend runs for every request: look the
customer up, have the payment provider authorize the ride, find drivers near
the customer, ask for a route from each driver, and pick the shortest. The
route calls go through a shared worker pool, whose size is one of the demo's
problems (``--fix-route-worker-pool-size``).

Two regressions for quest 12 live here too, each off by default: asking the
customer service twice (``--regression-double-customer-call``), and a pool as
big as the list of drivers, so every route call runs at once
(``--regression-unbounded-route-calls``).
"""

import logging

from opentelemetry import trace
from werkzeug.exceptions import ServiceUnavailable

from services.common import config
from services.common.pool import WorkerPool
from services.customer.client import CustomerClient
from services.driver.client import DriverClient
from services.frontend.payment import PaymentProvider
from services.route.client import RouteClient

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class BestETA:
    """Finds the best driver for a customer, using the other three services."""

    def __init__(self, customer_url, driver_url, route_url, pool_size,
                 payment_delay=config.default("payment-delay"),
                 double_customer_call=config.default("regression-double-customer-call"),
                 unbounded_route_calls=config.default("regression-unbounded-route-calls")):
        self.customers = CustomerClient(customer_url)
        self.payments = PaymentProvider(payment_delay)
        self.drivers = DriverClient(driver_url)
        self.routes = RouteClient(route_url)
        self.double_customer_call = double_customer_call
        if unbounded_route_calls:
            pool_size = config.NEARBY_DRIVERS  # one worker per driver: nothing waits its turn
        self.pool = WorkerPool(pool_size, name="route-worker")

    def dispatch(self, customer_id):
        """Return the customer, the chosen driver and that driver's ETA in seconds."""
        customer = self.customers.get(customer_id)
        if self.double_customer_call:
            # The regression: a second lookup, as a careless refactor might add.
            customer = self.customers.get(customer_id)
        self.payments.authorize(customer["id"])
        drivers = self.drivers.find_nearest(customer["location"])
        logger.info("asking for %d routes, %d at a time", len(drivers), self.pool.size)
        routes = self.pool.map(
            lambda driver: self.routes.find_route(driver["location"], customer["location"]), drivers
        )
        driver, eta_seconds = self.pick(customer, drivers, routes)
        return {"customer": customer, "driver": driver, "eta_seconds": eta_seconds}

    def pick(self, customer, drivers, routes):
        """Choose the driver with the shortest ETA; a manual span records the decision."""
        with tracer.start_as_current_span("find best ETA") as span:
            span.set_attributes(
                {"customer.id": str(customer["id"]), "dispatch.candidates": len(drivers)}
            )
            if not drivers:
                raise ServiceUnavailable(f"no driver is available near {customer['location']}")
            driver, route = min(zip(drivers, routes), key=lambda pair: pair[1]["eta_seconds"])
            span.set_attributes({"dispatch.driver.id": driver["driver_id"],
                                 "dispatch.eta_seconds": route["eta_seconds"]})
            logger.info("dispatching driver %s, arriving in %d s",
                        driver["driver_id"], route["eta_seconds"])
        return driver, route["eta_seconds"]
