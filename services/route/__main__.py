"""Start the route service: ``python -m services.route [flags]``."""

from services.common.app import start
from services.route.server import create_app

if __name__ == "__main__":
    start("route", create_app)
