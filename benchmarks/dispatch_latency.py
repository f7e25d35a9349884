"""/dispatch latency p50/p95 at concurrency 1 and 8, default flags and with every fix.

Each configuration runs on its own lab (free ports, temporary home) after a
short warm-up, so the numbers show what the demo's problems cost under load.
"""

from __future__ import annotations

import sys
import tempfile

from tracequest.lab import Lab, LabSettings
from tracequest.lab.load import run_load
from tracequest.host.ports import Ports

CONFIGS = {
    "default flags": {},
    "all fixes": {"TQ_FIX_DB_QUERY_DELAY": "5ms", "TQ_FIX_DISABLE_DB_CONN_MUTEX": "1",
                  "TQ_FIX_ROUTE_WORKER_POOL_SIZE": "10"},
}
RUNS = ((1, 20), (8, 64))  # (concurrency, requests)


def main() -> int:
    print(f"{'configuration':<14} {'conc.':>5} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} {'errors':>6}")
    failed = 0
    for name, env in CONFIGS.items():
        with tempfile.TemporaryDirectory() as home:
            lab = Lab(LabSettings(ports=Ports.free(), service_env=env), home)
            try:
                lab.up(log=lambda *_: None)
                run_load(lab.frontend_url, 4, 2, progress=None)  # warm-up
                for concurrency, count in RUNS:
                    result = run_load(lab.frontend_url, count, concurrency, progress=None)
                    errors = sum(result.errors.values())
                    failed += errors
                    print(f"{name:<14} {concurrency:>5} {count:>4} {result.percentile(50):>8.0f} "
                          f"{result.percentile(95):>8.0f} {result.count / result.elapsed_s:>7.1f} {errors:>6}")
            finally:
                lab.down(log=lambda *_: None)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
