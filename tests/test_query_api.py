"""Jaeger's query API v3 on the embedded backend: parameters, filters, errors."""

import json

import pytest
import requests
from otlp_payloads import designed_trace, now_base_ns

from tracequest.timefmt import format_rfc3339, parse_go_duration, parse_rfc3339


@pytest.fixture
def stored(backend):
    """Two designed traces stored a few seconds ago; returns their ids."""
    ids = []
    for offset in (0, 1_000_000_000):
        document, names = designed_trace(base_ns=now_base_ns() + offset)
        response = requests.post(f"{backend.otlp_http_endpoint}/v1/traces", data=json.dumps(document),
                                 headers={"Content-Type": "application/json"}, timeout=5)
        assert response.status_code == 200
        ids.append(names)
    return ids


def search(backend, **params):
    now = now_base_ns() + 10_000_000_000
    base = {"query.service_name": "frontend",
            "query.start_time_min": format_rfc3339(now - 3_600_000_000_000),
            "query.start_time_max": format_rfc3339(now)}
    base.update(params)
    return requests.get(f"{backend.query_url}/api/v3/traces", params={k: v for k, v in base.items() if v is not None},
                        timeout=5)


def trace_ids(response):
    spans = [s for rs in response.json()["result"]["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    return {s["traceId"] for s in spans}


def test_services_and_operations(backend, stored):
    assert requests.get(f"{backend.query_url}/api/v3/services").json() == {"services": ["customer", "frontend"]}
    ops = requests.get(f"{backend.query_url}/api/v3/operations", params={"service": "customer"}).json()
    assert ops == {"operations": [{"name": "GET /customer", "spanKind": "server"},
                                  {"name": "SELECT customers", "spanKind": "client"}]}
    servers = requests.get(f"{backend.query_url}/api/v3/operations",
                           params={"service": "customer", "span_kind": "server"}).json()
    assert servers == {"operations": [{"name": "GET /customer", "spanKind": "server"}]}


def test_search_returns_whole_traces_in_otlp_json(backend, stored):
    response = search(backend)
    assert response.status_code == 200
    assert trace_ids(response) == {stored[0]["trace"], stored[1]["trace"]}
    services = {rs["resource"]["attributes"][0]["value"]["stringValue"]
                for rs in response.json()["result"]["resourceSpans"]}
    assert services == {"frontend", "customer"}     # spans of other services in the trace come too


def test_search_accepts_camel_case_names(backend, stored):
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
    ({"query.attributes": json.dumps({"customer.id": "123"})}, 2),
    ({"query.attributes": json.dumps({"customer.id": "999"})}, 0),
])
def test_search_filters(backend, stored, params, expected):
    response = search(backend, **params)
    if expected == 0:
        assert response.status_code == 404
        assert response.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
    else:
        assert response.status_code == 200 and len(trace_ids(response)) == expected


def test_time_window_bounds_the_search(backend, stored):
    long_ago = 1_000_000_000_000_000_000
    response = search(backend, **{"query.start_time_min": format_rfc3339(long_ago),
                                  "query.start_time_max": format_rfc3339(long_ago + 10**9)})
    assert response.status_code == 404


@pytest.mark.parametrize("params, words", [
    ({"query.start_time_min": None}, "are required"),
    ({"query.start_time_max": None}, "are required"),
    ({"query.start_time_min": "yesterday"}, "malformed parameter query.start_time_min"),
    ({"query.duration_min": "5 minutes"}, "malformed parameter query.duration_min"),
    ({"query.num_traces": "many"}, "malformed parameter query.search_depth"),
    ({"query.attributes": "{broken"}, "malformed parameter query.attributes"),
])
def test_bad_parameters_answer_400(backend, stored, params, words):
    response = search(backend, **params)
    assert response.status_code == 400
    assert response.json()["error"]["httpCode"] == 400
    assert words in response.json()["error"]["message"]


def test_get_trace_by_id(backend, stored):
    wanted = stored[0]["trace"]
    response = requests.get(f"{backend.query_url}/api/v3/traces/{wanted}")
    assert response.status_code == 200 and trace_ids(response) == {wanted}
    assert requests.get(f"{backend.query_url}/api/v3/traces/{'0' * 31}1").status_code == 404
    assert requests.get(f"{backend.query_url}/api/v3/traces/not-hex").status_code == 400


def test_client_returns_the_trace_model(client, stored):
    traces = client.find_traces("frontend", start_ns=now_base_ns() - 60_000_000_000)
    assert {t.trace_id for t in traces} == {s["trace"] for s in stored}
    trace = client.get_trace(stored[0]["trace"])
    assert len(trace) == 6 and trace.slowest_span().name == "GET route"
    assert client.find_traces("frontend", min_duration_ms=500) == []
    assert client.services() == ["customer", "frontend"]


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
