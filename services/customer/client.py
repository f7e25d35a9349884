"""How other services reach the customer service."""

from services.common import config
from services.common.http import get_json


class CustomerClient:
    """Calls GET /customer on the customer service at `base_url`."""

    def __init__(self, base_url=config.default_url("customer")):
        self.base_url = base_url.rstrip("/")

    def get(self, customer_id):
        """Return the customer as a dict with id, name, location and email."""
        return get_json("customer", f"{self.base_url}/customer", params={"customer": customer_id})
