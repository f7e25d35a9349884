"""The customer table, in SQLite, made to behave like a slow remote database.

Two of HotROD's problems live here:

* Latency: every query takes about `query_delay` seconds. The delay runs
  inside the SQL statement (a user function in the WHERE clause), so the
  sqlite3 auto-instrumentation's span measures it, as it would for a real
  round trip to a database server.
* One connection: all queries share a single connection, guarded by a lock,
  so concurrent requests queue. Each waiting request says so with an event
  on its current span, which makes the queue visible in the trace.

Without the lock (``--fix-disable-db-conn-mutex``) every query opens its own
connection to the same in-memory database; sharing one SQLite connection
between threads without a lock is not an option, as it can deadlock.
"""

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace

from services.common import delay

SEED_SQL = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    email TEXT NOT NULL
);
INSERT INTO customers (id, name, location, email) VALUES
    (123, 'Rachel''s Floral Designs', '115,277', 'orders@rachels-floral.example'),
    (392, 'Trom Chocolatier', '577,322', 'shop@trom-chocolatier.example'),
    (567, 'Amazing Coffee Roasters', '211,653', 'hello@amazing-coffee.example'),
    (731, 'Japanese Desserts', '728,326', 'info@japanese-desserts.example');
"""

QUERY = """
SELECT id, name, location, email
FROM customers
WHERE remote_latency(:delay_ms) AND id = :id
"""


@dataclass
class Customer:
    id: int
    name: str
    location: str
    email: str


def _remote_latency(delay_ms):
    """SQL function standing in for the network: sleeps, then lets every row through."""
    delay.sleep(delay_ms / 1000)
    return 1


def _database_uri():
    # The memdb VFS lets several connections share one in-memory database and
    # read it at the same time; older SQLite falls back to a shared cache,
    # which works but lets only one query run at a time.
    name = f"tracequest-customers-{os.getpid()}"
    if sqlite3.sqlite_version_info >= (3, 36):
        return f"file:/{name}?vfs=memdb"
    return f"file:{name}?mode=memory&cache=shared"


class ConnectionLock:
    """A lock that counts who is queued for it and tells the current span."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count_guard = threading.Lock()
        self._queued = 0  # requests holding or waiting for the lock

    @contextmanager
    def hold(self):
        span = trace.get_current_span()
        with self._count_guard:
            ahead = self._queued
            self._queued += 1
        if ahead:
            span.add_event(f"waiting for lock behind {ahead} requests",
                           attributes={"lock.waiting_requests": ahead})
        started = time.monotonic()
        self._lock.acquire()
        try:
            with self._count_guard:
                behind = self._queued - 1
            span.add_event("acquired lock", attributes={
                "lock.wait_ms": round((time.monotonic() - started) * 1000, 1),
                "lock.requests_behind": behind,
            })
            yield
        finally:
            with self._count_guard:
                self._queued -= 1
            self._lock.release()


class Database:
    """Customers by id, with the latency and the connection lock the flags ask for."""

    def __init__(self, query_delay, use_mutex=True):
        self.query_delay = query_delay
        self._uri = _database_uri()
        self._lock = ConnectionLock() if use_mutex else None
        # This connection also keeps the in-memory database alive.
        self._shared = self._connect(check_same_thread=False)
        # executescript is not traced, so seeding adds no spans at start-up.
        self._shared.executescript(SEED_SQL)

    def _connect(self, **kwargs):
        connection = sqlite3.connect(self._uri, uri=True, **kwargs)
        # Deterministic, so SQLite calls it once per query, even when no row matches.
        connection.create_function("remote_latency", 1, _remote_latency, deterministic=True)
        return connection

    @contextmanager
    def _connection(self):
        if self._lock is None:
            connection = self._connect()
            try:
                yield connection
            finally:
                connection.close()
        else:
            with self._lock.hold():
                yield self._shared

    def get(self, customer_id):
        """Return the Customer with `customer_id`, or None if there is none."""
        with self._connection() as connection:
            # Queries go through a cursor: the sqlite3 instrumentation traces cursors.
            cursor = connection.cursor()
            cursor.execute(QUERY, {"delay_ms": self.query_delay * 1000, "id": customer_id})
            row = cursor.fetchone()
        return Customer(*row) if row else None
