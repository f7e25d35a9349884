"""Start the model server: ``python -m services.model [flags]``."""

from services.common.app import start
from services.model.server import create_app

if __name__ == "__main__":
    start("model", create_app)
