"""A small load generator for /dispatch: N requests at concurrency C.

Load is how the demo's problems show up (lock contention, pool queueing), so
the lab ships its own instead of asking learners to install one.
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

CUSTOMERS = ("123", "392", "567", "731")


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    def summary(self) -> str:
        if not self.latencies_ms:
            return f"no successful requests; errors: {self.errors}"
        lines = [
            f"{self.count} requests in {self.elapsed_s:.1f}s ({self.count / self.elapsed_s:.1f} req/s), "
            f"{sum(self.errors.values())} failed",
            f"latency ms: p50 {self.percentile(50):.0f}  p95 {self.percentile(95):.0f}  "
            f"p99 {self.percentile(99):.0f}  max {max(self.latencies_ms):.0f}  "
            f"mean {statistics.fmean(self.latencies_ms):.0f}",
        ]
        for reason, n in sorted(self.errors.items()):
            lines.append(f"  {n} × {reason}")
        return "\n".join(lines)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def run_load(frontend_url: str, requests_count: int = 50, concurrency: int = 4,
             customers=CUSTOMERS, timeout: float = 30.0, progress=sys.stderr) -> LoadResult:
    """Send /dispatch requests; progress goes to ``progress`` (None for quiet).

    On a terminal progress is a bar redrawn in place; in a pipe or a CI log,
    where a carriage return is garbage, it is a plain line every tenth.
    """
    result = LoadResult()
    draw = ProgressReport(progress, requests_count)
    lock = threading.Lock()
    ids = itertools.cycle(customers)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(concurrency, 10))
    session.mount("http://", adapter)

    def one(customer: str) -> None:
        started = time.perf_counter()
        try:
            response = session.get(f"{frontend_url}/dispatch", params={"customer": customer}, timeout=timeout)
            reason = None if response.status_code == 200 else f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            response, reason = None, type(exc).__name__
        elapsed_ms = (time.perf_counter() - started) * 1000
        with lock:
            if reason:
                result.errors[reason] = result.errors.get(reason, 0) + 1
            else:
                result.latencies_ms.append(elapsed_ms)
                trace_id = _trace_id(response)
                if trace_id:
                    result.trace_ids.append(trace_id)
            draw(result.count)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(one, [next(ids) for _ in range(requests_count)]):
            pass
    result.elapsed_s = time.perf_counter() - started
    draw.finish()
    return result


def _trace_id(response) -> str | None:
    header = response.headers.get("traceresponse", "")
    parts = header.split("-")
    return parts[1] if len(parts) == 4 else None


class ProgressReport:
    """Called with the number of requests done after each one; ``finish()`` at the end."""

    def __init__(self, stream, total: int, width: int = 30):
        self.stream, self.total, self.width = stream, total, width
        self.live = stream is not None and _is_terminal(stream)
        self.step = max(1, math.ceil(total / 10))  # plain lines: one per tenth

    def __call__(self, done: int) -> None:
        if self.stream is None:
            return
        if self.live:
            filled = int(self.width * done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}")
        elif done % self.step == 0 or done == self.total:
            self.stream.write(f"{done}/{self.total} requests done\n")
        else:
            return
        self.stream.flush()

    def finish(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False
