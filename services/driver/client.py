"""How other services reach the driver service."""

from services.common import config
from services.common.http import get_json


class DriverClient:
    """Calls GET /drivers on the driver service at `base_url`."""

    def __init__(self, base_url=config.default_url("driver")):
        self.base_url = base_url.rstrip("/")

    def find_nearest(self, location):
        """Return the drivers near `location` ("x,y") as dicts with driver_id and location."""
        return get_json("driver", f"{self.base_url}/drivers", params={"location": str(location)})
