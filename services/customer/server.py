"""HTTP handlers of the customer service."""

import logging
from dataclasses import asdict

from opentelemetry import trace
from werkzeug.exceptions import NotFound

from services.common.app import create_app as create_base_app
from services.common.app import query_arg
from services.customer.database import Database

logger = logging.getLogger(__name__)


def parse_customer_id(text):
    """Customer ids are whole numbers; anything else is refused before it reaches SQL."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"expected a customer id made of digits, got {text!r}")
    return int(text)


def create_app(settings):
    app = create_base_app(__name__, "customer", settings)
    use_mutex = not settings.fix_disable_db_conn_mutex
    database = Database(settings.fix_db_query_delay, use_mutex=use_mutex)

    @app.get("/customer")
    def get_customer():
        customer_id = query_arg("customer", parse_customer_id, " (a customer id such as 123)")
        span = trace.get_current_span()
        span.set_attribute("customer.id", str(customer_id))
        customer = database.get(customer_id)
        if customer is None:
            raise NotFound(f"there is no customer with id {customer_id}")
        # Personal data on a span: the collector's PII lesson hashes it.
        span.set_attribute("user.email", customer.email)
        logger.info("found customer %d: %s", customer.id, customer.name)
        return asdict(customer)

    return app
