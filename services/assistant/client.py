"""How other services reach the assistant: POST /ask."""

import requests

from services.common import config
from services.common.http import DownstreamError


class AssistantClient:
    """Asks the assistant at `base_url` a question for a customer."""

    def __init__(self, base_url=config.default_url("assistant")):
        self.base_url = base_url.rstrip("/")

    def ask(self, question, customer=None):
        """The assistant's answer as a dict (answer, iterations, usage, cost_usd, ...)."""
        url = f"{self.base_url}/ask"
        body = {"question": question, **({"customer": customer} if customer else {})}
        with requests.Session() as session:
            session.trust_env = False  # service to service: never through a proxy
            try:
                # An agent takes several model calls: give it longer than one GET.
                response = session.post(url, json=body, timeout=(config.HTTP_CONNECT_TIMEOUT,
                                                                  config.HTTP_READ_TIMEOUT * 6))
            except requests.RequestException as error:
                raise DownstreamError("assistant", url, 503,
                                      f"assistant at {url} did not answer ({type(error).__name__})") from error
        try:
            answer = response.json()
        except ValueError:
            raise DownstreamError("assistant", url, 502, f"assistant at {url} did not answer with JSON") from None
        if response.status_code >= 400:
            status = response.status_code if response.status_code < 500 else 502
            raise DownstreamError("assistant", url, status, answer.get("error", response.reason))
        return answer
