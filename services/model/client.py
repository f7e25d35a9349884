"""How other services reach the model server: the real ``openai`` client, pointed here."""

from openai import OpenAI

from services.common import config

MODEL = "tq-mini"


def openai_client(base_url=config.default_url("model"), max_retries=0):
    """An OpenAI client for the model server at `base_url`.

    It retries nothing by itself (``max_retries=0``): the agent retries a
    rate-limited call on its own, so each attempt is a span of its own.
    """
    return OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key="not-needed-locally",
                  max_retries=max_retries, timeout=config.HTTP_READ_TIMEOUT * 3)
