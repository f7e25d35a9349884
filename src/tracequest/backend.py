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

from werkzeug.serving import WSGIRequestHandler, make_server

from .ports import HOST, Ports
from .query_api import create_query_app
from .receiver import create_otlp_http_app, start_grpc_receiver
from .store import SpanStore

_DEFAULTS = Ports()
GRPC_PORT, HTTP_PORT, QUERY_PORT = _DEFAULTS.otlp_grpc, _DEFAULTS.otlp_http, _DEFAULTS.query


class _QuietRequestHandler(WSGIRequestHandler):
    """Exporters post every 200 ms; a log line per request would bury real messages."""

    def log_request(self, *args, **kwargs) -> None:
        pass


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
    _threads: list

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
        for server in self._http_servers:
            server.shutdown()
            server.server_close()
        self._grpc.stop(grace=1).wait()
        for thread in self._threads:
            thread.join(timeout=5)
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
) -> Backend:
    """Start receivers and query API in background threads; port 0 picks a free port."""
    store = SpanStore(db_path)
    started = []
    try:
        grpc_server, grpc_bound = start_grpc_receiver(store, host, grpc_port)
        started.append(grpc_server)
        http_server = make_server(host, http_port, create_otlp_http_app(store), threaded=True,
                                  request_handler=_QuietRequestHandler)
        started.append(http_server)
        query_server = make_server(host, query_port, create_query_app(store), threaded=True,
                                   request_handler=_QuietRequestHandler)
        started.append(query_server)
    except BaseException:
        for server in started:
            server.stop(0) if server is started[0] else server.server_close()
        store.close()
        raise
    threads = [
        # A short poll interval keeps stop() quick; idle cost is negligible.
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
        for s, name in ((http_server, "otlp-http"), (query_server, "query-api"))
    ]
    for thread in threads:
        thread.start()
    return Backend(store, host, grpc_bound, http_server.server_port, query_server.server_port,
                   grpc_server, [http_server, query_server], threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracequest.backend",
                                     description="Run the embedded trace backend.")
    parser.add_argument("--db", default=".tracequest/spans.db", help="SQLite file for spans")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--grpc-port", type=int, default=GRPC_PORT)
    parser.add_argument("--http-port", type=int, default=HTTP_PORT)
    parser.add_argument("--query-port", type=int, default=QUERY_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s backend %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        backend = start_backend(args.db, args.host, args.grpc_port, args.http_port, args.query_port)
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
