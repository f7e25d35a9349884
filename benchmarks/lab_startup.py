"""Time from `tracequest up` to the first queryable trace, on free ports.

Prints three numbers: how long `up` takes until every program answers its
health check, how long one /dispatch takes, and how long until that request's
whole trace can be read back through the query API.
"""

from __future__ import annotations

import sys
import tempfile
import time

import requests

from tracequest.traces.client import QueryClient
from tracequest.lab import Lab, LabSettings
from tracequest.host.ports import Ports

MIN_SPANS = 30


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        lab = Lab(LabSettings(ports=Ports.free()), home)
        started = time.perf_counter()
        try:
            lab.up(log=lambda *_: None)
            up_s = time.perf_counter() - started
            response = requests.get(f"{lab.frontend_url}/dispatch", params={"customer": "123"}, timeout=30)
            dispatched_s = time.perf_counter() - started
            trace_id = response.headers["traceresponse"].split("-")[1]
            trace = QueryClient(lab.query_url).wait_for_trace(trace_id, min_spans=MIN_SPANS, settle=0.0)
            queryable_s = time.perf_counter() - started
        finally:
            lab.down(log=lambda *_: None)
    print(f"up: all programs healthy after {up_s:.2f}s")
    print(f"first /dispatch answered at {dispatched_s:.2f}s")
    print(f"first trace queryable ({len(trace)} spans) at {queryable_s:.2f}s after `up` began")
    return 0


if __name__ == "__main__":
    sys.exit(main())
