"""Jaeger's query API v3: the contract between the lab's client and every backend.

Tests taking ``api`` run twice, against the embedded backend and against the
real Jaeger binary, on the same hand-built traces: the embedded backend must
answer as Jaeger does. Tests taking ``backend`` cover what only the embedded
backend offers (camelCase names and attribute search, which Jaeger 2.13 ignores).
"""

import json
from dataclasses import dataclass

import pytest
import requests
from otlp_payloads import designed_trace, now_base_ns

from tracequest.client import QueryClient
from tracequest.lab import Lab
from tracequest.ports import Ports
from tracequest.timefmt import format_rfc3339, parse_go_duration, parse_rfc3339


@dataclass
class QueryBackend:
    name: str
    otlp_http_endpoint: str
    query_url: str


@pytest.fixture(params=["embedded", "jaeger"])
def api(request, tmp_path):
    """A fresh backend of each kind, empty, on free ports."""
    if request.param == "embedded":
        backend = request.getfixturevalue("backend")
        yield QueryBackend("embedded", backend.otlp_http_endpoint, backend.query_url)
        return
    request.getfixturevalue("jaeger_bin")
    lab = Lab(home=tmp_path, ports=Ports.free(), backend="jaeger", services=())
    lab.up(log=lambda *_: None)
    try:
        yield QueryBackend("jaeger", lab.url("otlp_http"), lab.query_url)
    finally:
        lab.down(log=lambda *_: None)


def store_designed_traces(target) -> list[dict]:
    """Two designed traces a few seconds old, readable once this returns."""
    ids = []
    for offset in (0, 1_000_000_000):
        document, names = designed_trace(base_ns=now_base_ns() + offset)
        response = requests.post(f"{target.otlp_http_endpoint}/v1/traces", data=json.dumps(document),
                                 headers={"Content-Type": "application/json"}, timeout=5)
        assert response.status_code == 200
        ids.append(names)
    client = QueryClient(target.query_url)
    for names in ids:   # Jaeger stores asynchronously, after its batch processor
        client.wait_for_trace(names["trace"], min_spans=6, settle=0.0)
    return ids


@pytest.fixture
def stored(api):
    return store_designed_traces(api)


@pytest.fixture
def stored_embedded(backend):
    return store_designed_traces(backend)


def search(backend, **params):
    now = now_base_ns() + 10_000_000_000
    base = {"query.service_name": "frontend",
            "query.start_time_min": format_rfc3339(now - 3_600_000_000_000),
            "query.start_time_max": format_rfc3339(now),
            "query.num_traces": "20"}   # Jaeger 2.13 answers 500 without it
    base.update(params)
    return requests.get(f"{backend.query_url}/api/v3/traces", params={k: v for k, v in base.items() if v is not None},
                        timeout=5)


def trace_ids(response):
    spans = [s for rs in response.json()["result"]["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    return {s["traceId"] for s in spans}


def test_services_and_operations(api, stored):
    services = requests.get(f"{api.query_url}/api/v3/services").json()["services"]
    assert sorted(services) == ["customer", "frontend"]          # Jaeger does not sort them
    ops = requests.get(f"{api.query_url}/api/v3/operations", params={"service": "customer"}).json()
    assert ops == {"operations": [{"name": "GET /customer", "spanKind": "server"},
                                  {"name": "SELECT customers", "spanKind": "client"}]}
    servers = requests.get(f"{api.query_url}/api/v3/operations",
                           params={"service": "customer", "span_kind": "server"}).json()
    assert servers == {"operations": [{"name": "GET /customer", "spanKind": "server"}]}


def test_search_returns_whole_traces_in_otlp_json(api, stored):
    response = search(api)
    assert response.status_code == 200
    assert trace_ids(response) == {stored[0]["trace"], stored[1]["trace"]}
    services = {rs["resource"]["attributes"][0]["value"]["stringValue"]
                for rs in response.json()["result"]["resourceSpans"]}
    assert services == {"frontend", "customer"}     # spans of other services in the trace come too


def test_search_accepts_camel_case_names(backend, stored_embedded):
    stored = stored_embedded
    now = now_base_ns() + 10_000_000_000
    response = requests.get(f"{backend.query_url}/api/v3/traces", params={
        "query.serviceName": "customer", "query.startTimeMin": format_rfc3339(now - 60_000_000_000),
        "query.startTimeMax": format_rfc3339(now), "query.searchDepth": "1"})
    assert response.status_code == 200 and trace_ids(response) == {stored[1]["trace"]}


@pytest.mark.parametrize("params, expected", [
    ({"query.operation_name": "GET route"}, 2),
    ({"query.operation_name": "nope"}, 0),
    ({"query.duration_min": "95ms"}, 2),
    ({"query.duration_min": "101ms"}, 0),
    ({"query.duration_max": "1ms"}, 0),
    ({"query.num_traces": "1"}, 1),
    ({"query.service_name": "customer"}, 2),
    ({"query.service_name": "nobody"}, 0),
    ({"query.service_name": None}, 2),       # no service: every service
])
def test_search_filters(api, stored, params, expected):
    response = search(api, **params)
    if expected == 0:
        assert response.status_code == 404
        assert response.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
    else:
        assert response.status_code == 200 and len(trace_ids(response)) == expected


def test_time_window_bounds_the_search(api, stored):
    long_ago = 1_000_000_000_000_000_000
    response = search(api, **{"query.start_time_min": format_rfc3339(long_ago),
                                  "query.start_time_max": format_rfc3339(long_ago + 10**9)})
    assert response.status_code == 404


@pytest.mark.parametrize("params, words", [
    ({"query.start_time_min": None}, "are required"),
    ({"query.start_time_max": None}, "are required"),
    ({"query.start_time_min": "yesterday"}, "malformed parameter query.start_time_min"),
    ({"query.duration_min": "5 minutes"}, "malformed parameter query.duration_min"),
    ({"query.num_traces": "many"}, "malformed parameter query.num_traces"),
    ({"query.raw_traces": "maybe"}, "malformed parameter query.raw_traces"),
])
def test_bad_parameters_answer_400(api, stored, params, words):
    response = search(api, **params)
    assert response.status_code == 400
    assert response.json()["error"]["httpCode"] == 400
    assert words in response.json()["error"]["message"]


def test_get_trace_by_id(api, stored):
    wanted = stored[0]["trace"]
    response = requests.get(f"{api.query_url}/api/v3/traces/{wanted}")
    assert response.status_code == 200 and trace_ids(response) == {wanted}
    assert requests.get(f"{api.query_url}/api/v3/traces/{'0' * 31}1").status_code == 404
    assert requests.get(f"{api.query_url}/api/v3/traces/not-hex").status_code == 400


def test_client_returns_the_trace_model(api, stored):
    client = QueryClient(api.query_url)
    traces = client.find_traces("frontend", start_ns=now_base_ns() - 60_000_000_000)
    assert {t.trace_id for t in traces} == {s["trace"] for s in stored}
    trace = client.get_trace(stored[0]["trace"])
    assert len(trace) == 6 and trace.slowest_span().name == "GET route"
    assert [s.name for s in trace.critical_path()] == [
        "GET /dispatch", "GET customer", "GET /customer", "SELECT customers", "GET route"]
    assert trace.span(stored[0]["E"]).is_error
    assert client.find_traces("frontend", min_duration_ms=500) == []
    (one,) = client.find_traces("frontend", operation="GET route", limit=1)   # Jaeger picks any one
    assert one.trace_id in {s["trace"] for s in stored}
    assert client.services() == ["customer", "frontend"]
    assert {"name": "GET /customer", "spanKind": "server"} in client.operations("customer")


def test_client_on_an_empty_backend(api):
    client = QueryClient(api.query_url)
    assert client.services() == []
    assert client.find_traces("frontend") == []


def test_attribute_search(backend, stored_embedded):
    assert len(trace_ids(search(backend, **{"query.attributes": json.dumps({"customer.id": "123"})}))) == 2
    assert search(backend, **{"query.attributes": json.dumps({"customer.id": "999"})}).status_code == 404
    broken = search(backend, **{"query.attributes": "{broken"})
    assert broken.status_code == 400 and "malformed parameter query.attributes" in broken.text


def test_search_depth_must_be_positive(backend, stored_embedded):
    response = search(backend, **{"query.num_traces": "0"})
    assert response.status_code == 400 and "greater than 0" in response.json()["error"]["message"]


def test_time_formats():
    assert parse_rfc3339("2026-01-02T03:04:05.123456789Z") == 1767323045123456789
    assert parse_rfc3339("2026-01-02T04:04:05+01:00") == 1767323045000000000
    assert parse_rfc3339(format_rfc3339(1767323045123456789)) == 1767323045123456789
    assert parse_go_duration("1h2m3.5s") == 3_723_500_000_000
    assert parse_go_duration("250ms") == 250_000_000 and parse_go_duration("7us") == 7000
    for bad in ("", "5", "1.2.3s", "ms", "1d"):
        with pytest.raises(ValueError):
            parse_go_duration(bad)
    with pytest.raises(ValueError):
        parse_rfc3339("2026-13-02T03:04:05Z")
