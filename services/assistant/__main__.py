"""Start the assistant service: ``python -m services.assistant [flags]``."""

from services.common.app import start
from services.assistant.server import create_app

if __name__ == "__main__":
    start("assistant", create_app)
