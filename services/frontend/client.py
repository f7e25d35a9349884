"""How callers (notebooks, checks, load generators) reach the frontend."""

from services.common import config
from services.common.http import get_json


class FrontendClient:
    """Calls GET /dispatch on the frontend at `base_url`."""

    def __init__(self, base_url=config.default_url("frontend")):
        self.base_url = base_url.rstrip("/")

    def dispatch(self, customer_id, session_id=None):
        """Dispatch a driver to `customer_id`; the answer names the driver, ETA and trace id."""
        headers = {"X-Session-Id": session_id} if session_id else None
        params = {"customer": customer_id}
        return get_json("frontend", f"{self.base_url}/dispatch", params=params, headers=headers)
