"""A pretend payment provider: the frontend puts a hold on the customer's card first.

The provider is someone else's API, so no service of ours runs on the other
side: the frontend's own CLIENT span is all a trace will ever show of the
call. It is shaped like the span an HTTP client would make (``server.address``
names the provider). The provider answers within a few milliseconds, unless
``--payment-delay`` says otherwise.
"""

import logging

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common import config, delay
from services.common.randomness import rng

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

PROVIDER = "payments.example"


class PaymentProvider:
    """Authorizes rides at the simulated provider, which answers in about `latency` seconds."""

    def __init__(self, latency=config.default("payment-delay")):
        self.latency = latency

    def authorize(self, customer_id):
        """Hold the fare of one ride on the customer's card; return the authorization id."""
        attributes = {"server.address": PROVIDER, "customer.id": str(customer_id)}
        with tracer.start_as_current_span(
            "authorize payment", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            delay.sleep(self.latency)
            authorization = f"auth-{rng.getrandbits(32):08x}"
            span.set_attribute("payment.authorization.id", authorization)
        logger.info("payment authorized for customer %s: %s", customer_id, authorization)
        return authorization
