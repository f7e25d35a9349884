"""How other services reach the route service."""

from services.common import config
from services.common.http import get_json


class RouteClient:
    """Calls GET /route on the route service at `base_url`."""

    def __init__(self, base_url=config.default_url("route")):
        self.base_url = base_url.rstrip("/")

    def find_route(self, pickup, dropoff):
        """Return {"pickup", "dropoff", "eta_seconds"} for a trip between two "x,y" places."""
        params = {"pickup": str(pickup), "dropoff": str(dropoff)}
        return get_json("route", f"{self.base_url}/route", params=params)
