"""One way to call another service: a GET that answers JSON or fails clearly.

Every outgoing call goes through `get_json`, so every call has a timeout and
every failure becomes a `DownstreamError` that names the service and the URL.
The requests auto-instrumentation wraps the call in a CLIENT span and injects
the trace context and baggage headers; nothing here needs to know about that.
"""

import requests

from services.common import config


class DownstreamError(Exception):
    """A call to another service failed; `status` is what our own caller should get.

    A 4xx from downstream means the request itself was bad, so it passes
    through unchanged. A downstream that breaks (5xx, not JSON) is a 502 Bad
    Gateway; one that cannot be reached or does not answer in time is a 503.
    """

    def __init__(self, service, url, status, message):
        super().__init__(message)
        self.service = service
        self.url = url
        self.status = status
        self.message = message


def _error_text(response):
    try:
        return response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason


def get_json(service, url, params=None, headers=None):
    """GET `url` and return its decoded JSON body, or raise DownstreamError."""
    timeout = (config.HTTP_CONNECT_TIMEOUT, config.HTTP_READ_TIMEOUT)
    with requests.Session() as session:
        # Service-to-service calls go direct, whatever HTTP_PROXY says.
        session.trust_env = False
        try:
            response = session.get(url, params=params, headers=headers, timeout=timeout)
        except requests.ConnectionError as error:
            # Covers connection refused and the connect timeout alike.
            message = f"{service} service at {url} is unreachable ({type(error).__name__})"
            raise DownstreamError(service, url, 503, message) from error
        except requests.Timeout as error:
            message = f"{service} service at {url} did not answer within {timeout[1]:g}s"
            raise DownstreamError(service, url, 503, message) from error
    if 400 <= response.status_code < 500:
        raise DownstreamError(service, url, response.status_code, _error_text(response))
    if response.status_code >= 500:
        message = (f"{service} service at {url} failed with {response.status_code}: "
                   f"{_error_text(response)}")
        raise DownstreamError(service, url, 502, message)
    try:
        return response.json()
    except ValueError as error:
        message = f"{service} service at {url} did not answer with JSON"
        raise DownstreamError(service, url, 502, message) from error
