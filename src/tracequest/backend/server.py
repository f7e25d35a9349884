"""The embedded trace backend: OTLP receivers plus Jaeger's query API, in one process.

``start_backend`` runs it inside the current process (quest checks and tests
use that with port 0 for free ports); ``python -m tracequest.backend`` runs it
as the lab's background process.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import waitress
from waitress import wasyncore

from tracequest.backend.query_api import create_query_app
from tracequest.backend.receiver import (MAX_BODY_BYTES, StatusChannel, create_otlp_http_app,
                                         start_grpc_receiver)
from tracequest.backend.store import DEFAULT_MAX_AGE_S, DEFAULT_MAX_SPANS, SpanStore
from tracequest.host.ports import HOST, Ports, listen
from tracequest.traces.timefmt import format_go_duration, parse_go_duration

_DEFAULTS = Ports()
GRPC_PORT, HTTP_PORT, QUERY_PORT = _DEFAULTS.otlp_grpc, _DEFAULTS.otlp_http, _DEFAULTS.query
HTTP_THREADS = 8     # worker threads per HTTP listener: the bound on concurrent requests
STOP_GRACE_S = 2.0   # how long stop() lets a request in progress finish


class _WSGIServer:
    """One WSGI app on waitress in a background thread: keep-alive, a bounded worker pool.

    The listening socket is bound here (not by waitress) so port 0 gives one
    port even for a host name with several addresses, and the port is known
    before any request arrives.
    """

    def __init__(self, app, host: str, port: int, name: str, channel_class=None, **adjustments):
        sock = listen(host, port, name)
        self._map: dict = {}
        try:
            self._server = waitress.create_server(app, map=self._map, sockets=[sock], threads=HTTP_THREADS,
                                                  **adjustments)
        except BaseException:
            sock.close()
            raise
        if channel_class is not None:
            self._server.channel_class = channel_class
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, name=name.replace(" ", "-"), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # Workers first: a worker finishing a reply wakes the event loop through
        # its trigger pipe, which must still be open then.
        self._server.task_dispatcher.shutdown(timeout=STOP_GRACE_S)
        if self._thread.is_alive():
            # Close every socket from inside the event loop, which then ends at once.
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            self._thread.join(timeout=STOP_GRACE_S)
        else:
            wasyncore.close_all(self._map)


@dataclass
class Backend:
    """A running embedded backend; ``stop()`` closes every listener."""

    store: SpanStore
    host: str
    grpc_port: int
    http_port: int
    query_port: int
    _grpc: object
    _http_servers: list

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{self.host}:{self.grpc_port}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def query_url(self) -> str:
        return f"http://{self.host}:{self.query_port}"

    def stop(self) -> None:
        grpc_stopped = self._grpc.stop(grace=STOP_GRACE_S)
        for server in self._http_servers:
            server.stop()
        grpc_stopped.wait()
        self.store.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_backend(
    db_path: str | Path = ":memory:",
    host: str = HOST,
    grpc_port: int = GRPC_PORT,
    http_port: int = HTTP_PORT,
    query_port: int = QUERY_PORT,
    max_spans: int | None = None,
    max_age_s: float | None = None,
) -> Backend:
    """Start receivers and query API in background threads; port 0 picks a free port.

    ``max_spans`` and ``max_age_s`` bound the store (0 = no bound); None keeps
    the store's defaults.
    """
    store = SpanStore(db_path, max_spans=max_spans, max_age_s=max_age_s)
    grpc_server, http_servers = None, []
    try:
        grpc_server, grpc_bound = start_grpc_receiver(store, host, grpc_port)
        # waitress reads one byte past the limit at most, then answers 413 itself.
        http_servers.append(_WSGIServer(create_otlp_http_app(store, MAX_BODY_BYTES), host, http_port,
                                        "OTLP HTTP receiver", channel_class=StatusChannel,
                                        max_request_body_size=MAX_BODY_BYTES + 1))
        http_servers.append(_WSGIServer(create_query_app(store), host, query_port, "query API"))
    except BaseException:
        for server in http_servers:
            server.stop()
        if grpc_server is not None:
            grpc_server.stop(0)
        store.close()
        raise
    for server in http_servers:
        server.start()
    otlp_http, query = http_servers
    return Backend(store, host, grpc_bound, otlp_http.port, query.port, grpc_server, http_servers)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span count (a whole number, 0 or more)")
    return value


def _duration_s(text: str) -> float:
    try:
        return parse_go_duration(text) / 1e9
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracequest.backend",
                                     description="Run the embedded trace backend.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--db", default=".tracequest/spans.db", help="SQLite file for spans")
    parser.add_argument("--host", default=HOST, help="address every listener binds")
    parser.add_argument("--grpc-port", type=int, default=GRPC_PORT, help="OTLP/gRPC port")
    parser.add_argument("--http-port", type=int, default=HTTP_PORT, help="OTLP/HTTP port")
    parser.add_argument("--query-port", type=int, default=QUERY_PORT, help="query API port")
    parser.add_argument("--max-spans", type=_count, metavar="N",
                        default=DEFAULT_MAX_SPANS,
                        help="keep at most N spans, the oldest whole traces going first; 0 keeps all")
    parser.add_argument("--max-age", type=_duration_s, metavar="DURATION", dest="max_age_s",
                        # A string default goes through type=, and --help shows it as typed.
                        default=format_go_duration(int(DEFAULT_MAX_AGE_S * 1e9)),
                        help="drop traces older than this Go duration (90m, 1h30m, 24h); 0 keeps them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s backend %(message)s")
    # Under a load test waitress would log a line per request queued behind busy workers.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        backend = start_backend(args.db, args.host, args.grpc_port, args.http_port, args.query_port,
                                max_spans=args.max_spans, max_age_s=args.max_age_s)
    except OSError as exc:
        print(f"backend: cannot start: {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    logging.info("OTLP gRPC on %s:%d, OTLP HTTP on %s:%d, query API on %s",
                 backend.host, backend.grpc_port, backend.host, backend.http_port, backend.query_url)
    stopping.wait()
    backend.stop()
    logging.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
