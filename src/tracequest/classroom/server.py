"""Running the class board: on waitress in this process (``start_board``), or until Ctrl-C (``serve``).

``serve(db_path)`` runs the board's app (``create_app(store)``, in
:mod:`tracequest.classroom.app`) on waitress until Ctrl-C, creating the class
on its first start. Tests, the learner side's tests and the load test start a
real board in-process instead::

    from tracequest.classroom.server import Limits, start_board

    board = start_board(tmp_path / "board.db")          # 127.0.0.1, a free port
    board.url                 # "http://127.0.0.1:PORT" (no trailing slash)
    board.code                # "TRACE-7Q4K": what a join sends
    board.instructor_token    # for "Authorization: Bearer ..." on instructor endpoints
    board.store               # the BoardStore, to look at what arrived
    board.open_streams()      # event streams open right now
    board.stop()              # clean stop: streams end, then the listener, then the store
    # or: with start_board(path) as board: ...

    start_board(path, limits=Limits(join_burst=1000))    # e.g. 300 learners joining from one address

Started again on the same file, a board keeps its class, code, records and
instructor token (read back from :func:`token_file`, beside the database).

This module is the board as a whole, the one the CLI and the tests start: it
opens the store, makes the class and its instructor token, listens, and wires
the app and its event streams (:mod:`tracequest.classroom.events`) to
waitress. Who may ask what is in :mod:`tracequest.classroom.auth`; ``Limits``,
``create_app`` and the CSRF header (``CSRF_HEADER``, ``CSRF_VALUE``) are
importable from here too, for whoever starts a board.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import waitress
from waitress import wasyncore

from tracequest.classroom.app import CSRF_HEADER, CSRF_VALUE, DEFAULT_IDLE_MINUTES, MAX_BODY_BYTES, create_app
from tracequest.classroom.auth import Limits, hash_token, new_class_code, new_token
from tracequest.classroom.events import STOP_GRACE_S, BoardChannel, EventHub
from tracequest.classroom.store import BoardStore
from tracequest.host.ports import HOST, listen
from tracequest.lab.home import find_home

__all__ = ["CSRF_HEADER", "CSRF_VALUE", "DEFAULT_PORT", "HOST", "Board", "Limits", "banner",
           "create_app", "default_db_path", "join_url", "machine_address", "serve", "start_board", "token_file"]

DEFAULT_PORT = 8090


def token_file(db_path: str | Path) -> Path:
    """Where a board keeps its instructor token: beside its database, named after it.

    ``board.db`` keeps it in ``board.instructor-token``, so two classes served
    from one folder never overwrite each other's instructor link.
    """
    db_path = Path(db_path)
    return db_path.with_name(db_path.stem + ".instructor-token")
THREADS = 8
#: Open connections waitress accepts (event streams included) before it stops accepting.
CONNECTION_LIMIT = 1000


class Board:
    """A board running in this process (:func:`start_board`)."""

    def __init__(self, store: BoardStore, server, hub: EventHub, host: str, port: int,
                 instructor_token: str, created: bool, token_renewed: bool, db_path: Path):
        self.store = store
        self.host, self.port = host, port
        self.url = f"http://{_url_host(host)}:{port}"
        self.code = store.class_info().code
        self.instructor_token = instructor_token
        #: True when this start created the class; token_renewed: it made a new instructor token
        #: because the saved one was missing.
        self.created, self.token_renewed = created, token_renewed
        self.db_path = db_path
        self._server, self._hub = server, hub
        self._thread = threading.Thread(target=server.run, name="class-board", daemon=True)
        self._stopped = False

    def open_streams(self) -> int:
        return self._hub.count()

    def stop(self) -> None:
        """Stop cleanly: end the event streams, let requests in progress finish, close the store."""
        if self._stopped:
            return
        self._stopped = True
        self._hub.stop()
        time.sleep(0.05)   # let the main loop flush the streams' last chunks
        # Workers first: a worker finishing a reply wakes the event loop through its trigger.
        self._server.task_dispatcher.shutdown(timeout=STOP_GRACE_S)
        if self._thread.is_alive():
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._server._map))
            self._thread.join(timeout=STOP_GRACE_S)
        else:
            wasyncore.close_all(self._server._map)
        self.store.close()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def default_db_path() -> Path:
    """Where ``tracequest class serve`` keeps its board: ``<lab home>/class/board.db``."""
    return find_home() / "class" / "board.db"


def start_board(db_path: str | Path, host: str = HOST, port: int = 0, idle_minutes: int = DEFAULT_IDLE_MINUTES,
                limits: Limits | None = None) -> Board:
    """Run a board in background threads of this process; port 0 picks a free port.

    Creates the class on the first start (saving the instructor token in
    ``token_file(db_path)``, mode 0600); later starts keep it.
    """
    db_path = Path(db_path)
    # With hundreds of learners waitress would log a line for every request queued behind busy workers.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    store = BoardStore(db_path)
    try:
        token, created, renewed = _instructor_token(store, token_file(db_path))
        sock = listen(host, port, "class board")
        bound = sock.getsockname()[1]
        public = join_url(host, bound)
        app = create_app(store, idle_minutes=idle_minutes, limits=limits,
                         join_url=None if _is_loopback(host) else public)
        try:
            server = waitress.create_server(
                app, map={}, sockets=[sock], threads=THREADS, connection_limit=CONNECTION_LIMIT,
                # waitress answers bodies beyond this itself (in plain text); the app answers 413
                # in JSON from MAX_BODY_BYTES up to it.
                max_request_body_size=4 * MAX_BODY_BYTES, asyncore_use_poll=True,
                ident="tracequest-class-board")
        except BaseException:
            sock.close()
            raise
        server.channel_class = BoardChannel
        board = Board(store, server, app.extensions["tracequest_class_board"], host, bound, token,
                      created, renewed, db_path)
    except BaseException:
        store.close()
        raise
    board._thread.start()
    return board


def _instructor_token(store: BoardStore, token_file: Path) -> tuple[str, bool, bool]:
    """The instructor's token, the class made if need be: (token, class created, token renewed)."""
    info = store.class_info()
    if info is None:
        token = new_token()
        _save_token(token_file, token)
        store.create_class(new_class_code(), hash_token(token))
        return token, True, False
    try:
        token = token_file.read_text().strip()
    except OSError:
        token = ""
    if token and info.is_instructor(hash_token(token)):
        return token, False, False
    token = new_token()
    _save_token(token_file, token)
    store.set_instructor_token_hash(hash_token(token))
    return token, False, True


def _save_token(token_file: Path, token: str) -> None:
    token_file.parent.mkdir(parents=True, exist_ok=True)
    part = token_file.with_name(token_file.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(part, token_file)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def _url_host(host: str) -> str:
    if _is_wildcard(host):
        host = "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def machine_address() -> str:
    """This machine's address on its network (the one its default route leaves by)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))   # a documentation address: connecting a UDP socket sends nothing
            address = probe.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127.") or address == "0.0.0.0":
        try:
            address = socket.gethostbyname(socket.gethostname())
        except OSError:
            address = "127.0.0.1"
    return address


def join_url(host: str, port: int) -> str:
    """The URL learners join: the machine's address when the board listens on every interface."""
    return f"http://{_url_host(machine_address() if _is_wildcard(host) else host)}:{port}"


def banner(board: Board, host: str) -> list[str]:
    """What ``serve`` prints: the code, the learners' join command, the instructor's link."""
    public = join_url(host, board.port)
    learners = len(board.store.learners())
    lines = [f"New class {board.code} created." if board.created else
             f"Class {board.code} (from {board.db_path}): {learners} learners, "
             f"{board.store.record_count()} records.",
             f"The class board is at {board.url}/",
             "",
             "Learners join with:",
             f'    tracequest class join {public} {board.code} --name "Your Name"',
             "",
             "Instructor link (it signs you in to the board; keep it to yourself):",
             f"    {board.url}/#instructor={board.instructor_token}",
             f"The instructor token is also saved in {token_file(board.db_path)} (readable by you only)."]
    if board.token_renewed:
        lines.append("The saved instructor token was missing, so this is a new one: "
                     "the old instructor link no longer works.")
    lines.append("")
    if _is_loopback(host):
        lines.append("Only this machine can reach the board; --host 0.0.0.0 opens it to the workshop network.")
    else:
        lines.append(f"Warning: the board listens on {host}: anyone on this network can reach the board; "
                     f"share the code only with your class.")
    lines.append(f"Records are kept in {board.db_path}. Ctrl-C stops the board.")
    return lines


def serve(db_path: str | Path | None = None, host: str = HOST, port: int = DEFAULT_PORT,
          idle_minutes: int = DEFAULT_IDLE_MINUTES, out: Callable[[str], object] = print,
          limits: Limits | None = None, stop: threading.Event | None = None) -> int:
    """Run the class board until Ctrl-C (or SIGTERM, or ``stop`` is set); the exit status.

    ``db_path`` defaults to ``<lab home>/class/board.db``. A ClassError says
    why it cannot start (the port is taken, the database is newer).
    """
    db_path = Path(db_path) if db_path is not None else default_db_path()
    board = start_board(db_path, host=host, port=port, idle_minutes=idle_minutes, limits=limits)
    stop = stop or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for line in banner(board, host):
            out(line)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    out(f"The class board stopped; its records stay in {db_path}.")
    return 0
