"""Hand-built OTLP/JSON payloads for tests: designed traces with known answers."""

from __future__ import annotations

import itertools
import os
import time

_counter = itertools.count(1)
BASE_NS = 1_700_000_000_000_000_000  # a fixed instant, so designed traces are exact

KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def span(name, trace_id, span_id=None, parent=None, start_ms=0.0, dur_ms=10.0, kind="INTERNAL",
         error=False, attributes=None, events=None, base_ns=BASE_NS) -> dict:
    """One span in OTLP/JSON, timed in ms from base_ns."""
    start = base_ns + int(start_ms * 1e6)
    body = {
        "traceId": trace_id,
        "spanId": span_id or new_span_id(),
        "name": name,
        "kind": KINDS[kind],
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(dur_ms * 1e6)),
        "attributes": [_kv(k, v) for k, v in (attributes or {}).items()],
        "events": [{"name": e, "timeUnixNano": str(start)} for e in (events or [])],
        "status": {"code": 2, "message": "boom"} if error else {},
    }
    if parent:
        body["parentSpanId"] = parent
    return body


def payload(*services: tuple[str, list[dict]]) -> dict:
    """An export request: (service name, spans) pairs become resourceSpans."""
    return {"resourceSpans": [
        {"resource": {"attributes": [_kv("service.name", name)]},
         "scopeSpans": [{"scope": {"name": "tests"}, "spans": spans}]}
        for name, spans in services
    ]}


def _kv(key, value) -> dict:
    if isinstance(value, bool):
        wrapped = {"boolValue": value}
    elif isinstance(value, int):
        wrapped = {"intValue": str(value)}
    elif isinstance(value, float):
        wrapped = {"doubleValue": value}
    else:
        wrapped = {"stringValue": str(value)}
    return {"key": key, "value": wrapped}


def designed_trace(base_ns: int = BASE_NS) -> tuple[dict, dict[str, str]]:
    """A dispatch-like trace whose analyses are known by hand.

        A frontend  GET /dispatch   0..100 ms
          B frontend  GET customer   0..40
            C customer  GET /customer  2..38
              D customer  SELECT       5..35
          E frontend  GET driver    40..70   (overlaps F: not on the critical path)
          F frontend  GET route     45..95

    Self times: A 5, B 4, C 6, D 30, E 30, F 50. Critical path: A, B, C, D, F.
    """
    t = new_trace_id()
    ids = {name: new_span_id() for name in "ABCDEF"}
    ids["trace"] = t
    frontend = [
        span("GET /dispatch", t, ids["A"], None, 0, 100, "SERVER", base_ns=base_ns,
             attributes={"http.request.method": "GET", "customer.id": "123"}),
        span("GET customer", t, ids["B"], ids["A"], 0, 40, "CLIENT", base_ns=base_ns),
        span("GET driver", t, ids["E"], ids["A"], 40, 30, "CLIENT", base_ns=base_ns, error=True),
        span("GET route", t, ids["F"], ids["A"], 45, 50, "CLIENT", base_ns=base_ns),
    ]
    customer = [
        span("GET /customer", t, ids["C"], ids["B"], 2, 36, "SERVER", base_ns=base_ns),
        span("SELECT customers", t, ids["D"], ids["C"], 5, 30, "CLIENT", base_ns=base_ns,
             attributes={"db.system.name": "sqlite"}, events=["waiting for lock behind 2 requests"]),
    ]
    return payload(("frontend", frontend), ("customer", customer)), ids


def now_base_ns() -> int:
    """A base time a few seconds ago, for payloads a time-bounded search must find."""
    return time.time_ns() - 5_000_000_000
