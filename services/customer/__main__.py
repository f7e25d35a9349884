"""Start the customer service: ``python -m services.customer [flags]``."""

from services.common.app import start
from services.customer.server import create_app

if __name__ == "__main__":
    start("customer", create_app)
