"""The lab's local model server, for this quest: nothing to change here.

It speaks OpenAI's chat-completions API and answers from a script, so every
run gives the same answers and the same token counts. Its failure knobs are
environment variables, e.g. every third call refused with 429:

    TQ_MODEL_RATE_LIMIT_EVERY=3 python model_server.py      # 127.0.0.1:5011
"""

import os

from services.common import config
from services.model.server import create_app

if __name__ == "__main__":
    settings = config.parse_args("model", [])
    create_app(settings).run(host="127.0.0.1", port=int(os.environ.get("PORT", "5011")),
                             threaded=True, use_reloader=False)
