"""The query client: Jaeger's API v3 in, trace model out.

It is the only way the lab reads traces, so it works the same against the
embedded backend, a native Jaeger, or Jaeger in Docker.
"""

from __future__ import annotations

import os
import time

import requests

from tracequest.errors import TraceQuestError
from tracequest.host.procs import until
from tracequest.traces.model import Trace, group_traces
from tracequest.traces.otlp import OTLPError, decode_json, spans_from_request
from tracequest.traces.timefmt import format_go_duration, format_rfc3339, now_ns

DEFAULT_URL = "http://127.0.0.1:16686"
#: With ``attributes``, how many of the newest matching traces find_traces reads to filter.
ATTRIBUTE_SCAN = 200


class QueryError(TraceQuestError):
    """The backend answered, but not with what was asked for."""


class BackendUnavailable(QueryError):
    """Nothing answers at the query URL."""


class TraceNotFound(QueryError):
    pass


def default_url() -> str:
    return os.environ.get("TRACEQUEST_QUERY_URL", DEFAULT_URL).rstrip("/")


class QueryClient:
    """Read traces from any backend that speaks Jaeger's API v3."""

    def __init__(self, url: str | None = None, timeout: float = 10.0):
        self.url = (url or default_url()).rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def __repr__(self) -> str:
        return f"QueryClient({self.url!r})"

    def _get(self, path: str, params: dict | None = None) -> requests.Response:
        try:
            return self._http.get(self.url + path, params=params, timeout=self.timeout)
        except requests.ConnectionError:
            raise BackendUnavailable(
                f"no trace backend answers at {self.url}. Start the lab with `make up` "
                "(or `tracequest up`), or point TRACEQUEST_QUERY_URL at your Jaeger."
            ) from None
        except requests.Timeout:
            raise BackendUnavailable(f"the trace backend at {self.url} did not answer within {self.timeout}s") from None

    def _json(self, response: requests.Response) -> dict:
        try:
            return response.json()
        except ValueError:
            raise QueryError(f"{response.url} answered {response.status_code} with a body that is not JSON") from None

    def _check(self, response: requests.Response) -> dict:
        body = self._json(response)
        if response.status_code != 200:
            message = (body.get("error") or {}).get("message", response.text[:200]) if isinstance(body, dict) else body
            raise QueryError(f"{response.status_code} from {response.url}: {message}")
        return body

    # --- API v3 -------------------------------------------------------------

    def services(self) -> list[str]:
        return sorted(self._check(self._get("/api/v3/services")).get("services") or [])

    def operations(self, service: str, span_kind: str | None = None) -> list[dict]:
        params = {"service": service}
        if span_kind:
            params["span_kind"] = span_kind.lower()
        return self._check(self._get("/api/v3/operations", params)).get("operations") or []

    def find_traces(
        self,
        service: str,
        operation: str | None = None,
        lookback_s: float = 3600,
        start_ns: int | None = None,
        end_ns: int | None = None,
        min_duration_ms: float | None = None,
        max_duration_ms: float | None = None,
        attributes: dict | None = None,
        limit: int = 20,
        scan: int = ATTRIBUTE_SCAN,
    ) -> list[Trace]:
        """Traces with a span of ``service`` matching every filter; newest first.

        Jaeger's HTTP API has no attribute search (2.13 ignores
        ``query.attributes`` and returns everything), so ``attributes`` are
        matched here: the newest ``scan`` traces matching the other filters are
        read, and those with one span of ``service`` that meets every filter and
        carries every attribute (its own or its resource's, compared as text)
        are kept.
        """
        end_ns = end_ns if end_ns is not None else now_ns() + 1_000_000_000
        start_ns = start_ns if start_ns is not None else end_ns - int(lookback_s * 1e9)
        params = {
            "query.service_name": service,
            "query.start_time_min": format_rfc3339(start_ns),
            "query.start_time_max": format_rfc3339(end_ns),
            "query.num_traces": str(max(limit, scan) if attributes else limit),
        }
        if operation:
            params["query.operation_name"] = operation
        if min_duration_ms is not None:
            params["query.duration_min"] = format_go_duration(int(min_duration_ms * 1e6))
        if max_duration_ms is not None:
            params["query.duration_max"] = format_go_duration(int(max_duration_ms * 1e6))
        response = self._get("/api/v3/traces", params)
        if response.status_code == 404:
            return []
        traces = self._traces(self._check(response))
        if attributes:
            def matches(span) -> bool:
                return (span.service == service and (not operation or span.name == operation)
                        and (min_duration_ms is None or span.duration_ms >= min_duration_ms)
                        and (max_duration_ms is None or span.duration_ms <= max_duration_ms)
                        and has_attributes(span, attributes))
            traces = [t for t in traces if any(matches(s) for s in t)]
        return traces[:limit]

    def trace_json(self, trace_id: str) -> dict:
        """The trace exactly as the backend sends it: the API v3 envelope of OTLP/JSON."""
        response = self._get(f"/api/v3/traces/{trace_id}")
        if response.status_code == 404:
            raise TraceNotFound(f"trace {trace_id} is not in the backend at {self.url} (yet?)")
        return self._check(response)

    def get_trace(self, trace_id: str) -> Trace:
        traces = self._traces(self.trace_json(trace_id))
        if not traces:
            raise TraceNotFound(f"trace {trace_id} is not in the backend at {self.url}")
        return traces[0]

    def _traces(self, body: dict) -> list[Trace]:
        try:
            return group_traces(spans_from_request(decode_json(body.get("result") or {})))
        except OTLPError as exc:
            raise QueryError(f"the backend at {self.url} sent spans that are not OTLP/JSON: {exc}") from None

    # --- conveniences -------------------------------------------------------

    def wait_for_trace(self, trace_id: str, min_spans: int = 1, timeout: float = 15.0,
                       settle: float = 0.5) -> Trace:
        """Poll until the trace has ``min_spans`` spans and stops growing.

        Exporters batch spans, so a trace arrives in pieces; waiting until
        the count is stable for ``settle`` seconds avoids reading half a trace.
        """
        seen = {"count": -1, "since": time.monotonic(), "trace": None}

        def stable_and_whole() -> bool:
            try:
                trace = self.get_trace(trace_id)
            except TraceNotFound:
                trace = None
            count, now = (len(trace) if trace else 0), time.monotonic()
            if count != seen["count"]:
                seen.update(count=count, since=now)
            seen["trace"] = trace
            return count >= min_spans and now - seen["since"] >= settle

        until(stable_and_whole, timeout, interval=0.1)
        trace = seen["trace"]
        if trace is None:
            raise TraceNotFound(f"trace {trace_id} did not reach {self.url} within {timeout}s")
        if len(trace) < min_spans:
            raise TraceNotFound(
                f"trace {trace_id} has {len(trace)} spans after {timeout}s, expected at least {min_spans}"
            )
        return trace

    def is_up(self) -> bool:
        try:
            return self._get("/api/v3/services").status_code == 200
        except BackendUnavailable:
            return False


def has_attributes(span, wanted: dict) -> bool:
    """Every wanted attribute on the span or its resource, compared as text (as Jaeger compares tags)."""
    for key, value in wanted.items():
        found = span.attributes.get(key, span.resource.get(key))
        if found is None or _as_text(found) != _as_text(value):
            return False
    return True


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
