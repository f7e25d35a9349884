"""Start the driver service: ``python -m services.driver [flags]``."""

from services.common.app import start
from services.driver.server import create_app

if __name__ == "__main__":
    start("driver", create_app)
