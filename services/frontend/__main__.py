"""Start the frontend service: ``python -m services.frontend [flags]``."""

from services.common.app import start
from services.frontend.server import create_app

if __name__ == "__main__":
    start("frontend", create_app)
