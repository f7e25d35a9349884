"""A relay between two of the learner's services that can drop headers on purpose.

The propagation quest passes only if the ``traceparent`` header is what joins
the two services. Sending the call through this relay lets a check watch the
headers go by, and then strip ``traceparent`` to prove the services fall apart
into two traces without it.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


class Relay:
    """Forwards every request to ``127.0.0.1:<target_port>``, minus the ``strip`` headers."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.strip: set[str] = set()
        self.seen: list[dict[str, str]] = []  # headers of each request, as received
        self._server = ThreadingHTTPServer((HOST, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_port}"

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(relay: Relay):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            received = {k.lower(): v for k, v in self.headers.items()}
            relay.seen.append(received)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in received.items()
                       if k not in relay.strip and k not in HOP_BY_HOP}
            conn = http.client.HTTPConnection(HOST, relay.target_port, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
            except OSError as exc:
                self.send_error(502, f"relay could not reach the service: {exc}")
                return
            finally:
                conn.close()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _forward

        def log_message(self, *args) -> None:
            pass

    return Handler
