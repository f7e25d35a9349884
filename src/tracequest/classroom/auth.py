"""Who may ask the class board what, and how often: tokens, the class code, callers, rate limits.

The app (:mod:`tracequest.classroom.app`) checks every request with these
pieces, and the server (:mod:`tracequest.classroom.server`) makes the class's
code and the instructor's token with them; they live apart from both so that
what the board's secrets are, who a caller is and what a refusal looks like
are in one short file. A token is kept only as its SHA-256
(:func:`hash_token`): the store never sees one.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from dataclasses import dataclass

from werkzeug.exceptions import HTTPException

from tracequest.classroom.store import Learner

CODE_PREFIX = "TRACE-"
#: Letters and digits nobody misreads from a projector: no 0/O, no 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_CHARS = 4


def new_token() -> str:
    """A fresh learner or instructor token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the store keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_class_code() -> str:
    """A class code like TRACE-7Q4K."""
    return CODE_PREFIX + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))


@dataclass(frozen=True)
class Limits:
    """How much one caller may ask of the board."""

    token_rate: float = 20.0   # requests per second per token (instructor or learner) ...
    token_burst: int = 40      # ... with bursts up to this many
    join_rate: float = 2.0     # joins and sign-ins per second per remote address ...
    join_burst: int = 300      # ... a whole room behind one NAT can join at once (a class code
                               #     still takes days to guess at 2 a second)
    max_streams: int = 500     # event streams open at once


class Refused(HTTPException):
    """A request the board refuses: a JSON ``{"error": message}`` and nothing changed.

    Always 4xx, except 503 when the board has as many event streams open as it allows.
    """

    def __init__(self, code: int, message: str, headers: dict | None = None):
        super().__init__(description=message)
        self.code = code
        self.extra_headers = headers or {}


@dataclass(frozen=True)
class Caller:
    """Who a request is from: the instructor, or one learner."""

    role: str                  # "instructor" | "learner"
    learner: Learner | None
    via_cookie: bool

    @property
    def learner_id(self) -> str | None:
        return self.learner.id if self.learner else None


class Buckets:
    """Token buckets by key (a token's hash, or a remote address)."""

    MAX_KEYS = 10_000

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > self.MAX_KEYS:   # forget callers whose buckets are full again
                self._buckets = {k: (t, at) for k, (t, at) in self._buckets.items()
                                 if t + (now - at) * self.rate < self.burst}
        return wait


def refuse_rate(wait: float) -> Refused:
    """The 429 for a caller whose bucket is empty for ``wait`` more seconds."""
    return Refused(429, "too many requests; wait a moment and try again",
                   {"Retry-After": str(max(1, math.ceil(wait)))})
