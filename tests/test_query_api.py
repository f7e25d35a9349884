"""Jaeger's query API v3: the contract between the lab's client and every backend.

Tests taking ``api`` run twice, against the embedded backend and against the
real Jaeger binary (2.13), on the same hand-built traces: the embedded backend
must answer as Jaeger does. Where Jaeger refuses a request with a 500 or
silently ignores a parameter, the embedded backend answers 400 naming the
spelling Jaeger honours; those tests assert each backend's own answer.
"""

import base64
import json
from dataclasses import dataclass

import pytest
import requests
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_payloads import designed_trace, new_span_id, new_trace_id, now_base_ns, payload, span

from tracequest.traces.client import QueryClient
from tracequest.lab import Lab, LabSettings
from tracequest.traces.otlp import decode_json, encode_json
from tracequest.host.ports import Ports
from tracequest.traces.timefmt import format_rfc3339, parse_go_duration, parse_rfc3339


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
    lab = Lab(LabSettings(backend="jaeger", ports=Ports.free(), services=()), home=tmp_path)
    lab.up(log=lambda *_: None)
    try:
        yield QueryBackend("jaeger", lab.url("otlp_http"), lab.query_url)
    finally:
        lab.down(log=lambda *_: None)


def post(target, document: dict) -> None:
    response = requests.post(f"{target.otlp_http_endpoint}/v1/traces", data=json.dumps(document),
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 200, response.text


def store_designed_traces(target) -> list[dict]:
    """Two designed traces a few seconds old, readable once this returns; the second arrives last.

    Each is waited for before the next is sent: Jaeger stores asynchronously, after
    its batch processor, and traces of one batch land in no particular order.
    """
    ids, client = [], QueryClient(target.query_url)
    for offset in (0, 1_000_000_000):
        document, names = designed_trace(base_ns=now_base_ns() + offset)
        post(target, document)
        client.wait_for_trace(names["trace"], min_spans=6, settle=0.0)
        ids.append(names)
    return ids


@pytest.fixture
def stored(api):
    return store_designed_traces(api)


def search(backend, **params):
    now = now_base_ns() + 10_000_000_000
    base = {"query.service_name": "frontend",
            "query.start_time_min": format_rfc3339(now - 3_600_000_000_000),
            "query.start_time_max": format_rfc3339(now),
            "query.num_traces": "20"}   # Jaeger 2.13 answers 500 without it
    base.update(params)
    return requests.get(f"{backend.query_url}/api/v3/traces", params={k: v for k, v in base.items() if v is not None},
                        timeout=5)


def all_spans(response) -> list[dict]:
    return [s for rs in response.json()["result"]["resourceSpans"]
            for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]


def trace_ids(response) -> set[str]:
    return {s["traceId"] for s in all_spans(response)}


def trace_order(response) -> list[str]:
    """Trace ids in the order the answer first mentions them."""
    return list(dict.fromkeys(s["traceId"] for s in all_spans(response)))


def operations(backend, **params) -> requests.Response:
    return requests.get(f"{backend.query_url}/api/v3/operations", params=params, timeout=5)


def sorted_operations(response) -> list:
    """Jaeger lists operations in no fixed order (a Go map), so compare them sorted."""
    return sorted(response.json()["operations"], key=lambda op: (op["name"], op["spanKind"]))


def error_message(response) -> str:
    return response.json()["error"]["message"]


# --- what both backends answer alike -------------------------------------------------------

def test_services_and_operations(api, stored):
    services = requests.get(f"{api.query_url}/api/v3/services").json()["services"]
    assert sorted(services) == ["customer", "frontend"]          # Jaeger does not sort them
    ops = operations(api, service="customer").json()
    assert sorted(ops["operations"], key=lambda o: o["name"]) == [
        {"name": "GET /customer", "spanKind": "server"}, {"name": "SELECT customers", "spanKind": "client"}]
    assert operations(api, service="customer", span_kind="server").json() == {
        "operations": [{"name": "GET /customer", "spanKind": "server"}]}
    assert operations(api, service="nobody").json() == {"operations": []}


def test_search_returns_whole_traces_in_otlp_json(api, stored):
    response = search(api)
    assert response.status_code == 200
    assert trace_ids(response) == {stored[0]["trace"], stored[1]["trace"]}
    services = {rs["resource"]["attributes"][0]["value"]["stringValue"]
                for rs in response.json()["result"]["resourceSpans"]}
    assert services == {"frontend", "customer"}     # spans of other services in the trace come too


def test_search_results_newest_first(api, stored):
    assert trace_order(search(api)) == [stored[1]["trace"], stored[0]["trace"]]
    # Newest means most recently arrived, as in Jaeger's ring of traces: a trace that
    # started earlier than both but arrives after them comes first.
    document, late = designed_trace(base_ns=now_base_ns() - 60_000_000_000)
    post(api, document)
    QueryClient(api.query_url).wait_for_trace(late["trace"], min_spans=6, settle=0.0)
    assert trace_order(search(api)) == [late["trace"], stored[1]["trace"], stored[0]["trace"]]
    assert trace_order(search(api, **{"query.num_traces": "2"})) == [late["trace"], stored[1]["trace"]]


@pytest.mark.parametrize("params, expected", [
    ({"query.operation_name": "GET route"}, 2),
    ({"query.operation_name": "nope"}, 0),
    ({"query.duration_min": "95ms"}, 2),
    ({"query.duration_min": "101ms"}, 0),
    ({"query.duration_max": "1ms"}, 0),
    ({"query.duration_min": "29ms", "query.duration_max": "31ms"}, 2),   # GET driver, 30 ms
    ({"query.num_traces": "1"}, 1),
    ({"query.service_name": "customer"}, 2),
    ({"query.service_name": "customer", "query.duration_min": "37ms"}, 0),   # its longest span is 36 ms
    ({"query.service_name": "nobody"}, 0),
    ({"query.service_name": None}, 2),       # no service: every service
    ({"query.service_name": None, "query.operation_name": "SELECT customers"}, 2),
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
    assert words in error_message(response)


def test_get_trace_by_id(api, stored):
    wanted = stored[0]["trace"]
    response = requests.get(f"{api.query_url}/api/v3/traces/{wanted}")
    assert response.status_code == 200 and trace_ids(response) == {wanted}
    assert requests.get(f"{api.query_url}/api/v3/traces/{'0' * 31}1").status_code == 404
    assert requests.get(f"{api.query_url}/api/v3/traces/not-hex").status_code == 400


def test_status_on_every_span(api, stored):
    spans = all_spans(requests.get(f"{api.query_url}/api/v3/traces/{stored[0]['trace']}"))
    assert len(spans) == 6 and all("status" in s for s in spans)
    by_id = {s["spanId"]: s for s in spans}
    assert by_id[stored[0]["E"]]["status"] == {"code": 2, "message": "boom"}
    assert by_id[stored[0]["A"]]["status"] == {}         # unset: present, and empty


def test_spans_sharing_an_id_are_all_kept(api):
    """Two different spans with one id both come back; an exact copy (an exporter's retry) once."""
    t, shared, root = new_trace_id(), new_span_id(), new_span_id()
    base = now_base_ns()
    spans = [span("root", t, root, None, 0, 50, "SERVER", base_ns=base),
             span("first", t, shared, root, 5, 10, base_ns=base),
             span("second", t, shared, root, 20, 10, base_ns=base)]
    retried = span("retried", t, new_span_id(), root, 30, 5, base_ns=base)
    post(api, payload(("svc", spans + [retried])))
    post(api, payload(("svc", [retried])))
    trace = QueryClient(api.query_url).wait_for_trace(t, min_spans=4)
    assert sorted(s.name for s in trace) == ["first", "retried", "root", "second"]


def test_operations_without_a_name_or_kind(api):
    """Jaeger leaves out an empty name and an unspecified kind rather than writing ''."""
    t, root = new_trace_id(), new_span_id()
    spans = [span("root", t, root, None, 0, 50, "SERVER", base_ns=now_base_ns()),
             span("", t, None, root, 5, 10, "CLIENT", base_ns=now_base_ns()),
             {**span("no kind", t, None, root, 20, 10, base_ns=now_base_ns()), "kind": 0}]
    post(api, payload(("odd", spans)))
    QueryClient(api.query_url).wait_for_trace(t, min_spans=3)
    ops = operations(api, service="odd").json()["operations"]
    assert sorted(ops, key=json.dumps) == sorted(
        [{"name": "root", "spanKind": "server"}, {"spanKind": "client"}, {"name": "no kind"}], key=json.dumps)


def test_client_returns_the_trace_model(api, stored):
    client = QueryClient(api.query_url)
    traces = client.find_traces("frontend", start_ns=now_base_ns() - 60_000_000_000)
    assert [t.trace_id for t in traces] == [stored[1]["trace"], stored[0]["trace"]]
    trace = client.get_trace(stored[0]["trace"])
    assert len(trace) == 6 and trace.slowest_span().name == "GET route"
    assert [s.name for s in trace.critical_path()] == [
        "GET /dispatch", "GET customer", "GET /customer", "SELECT customers", "GET route"]
    assert trace.span(stored[0]["E"]).is_error
    assert client.find_traces("frontend", min_duration_ms=500) == []
    (one,) = client.find_traces("frontend", operation="GET route", limit=1)
    assert one.trace_id == stored[1]["trace"]              # the newest
    assert client.services() == ["customer", "frontend"]
    assert {"name": "GET /customer", "spanKind": "server"} in client.operations("customer")
    assert client.operations("customer", span_kind="SERVER") == [{"name": "GET /customer", "spanKind": "server"}]


def test_client_filters_attributes_itself(api, stored):
    """Neither backend searches attributes over HTTP; the client matches them on the trace model."""
    client = QueryClient(api.query_url)
    found = client.find_traces("frontend", attributes={"customer.id": "123"})
    assert {t.trace_id for t in found} == {s["trace"] for s in stored}
    assert client.find_traces("frontend", attributes={"customer.id": "999"}) == []
    # One span must meet every filter: customer.id is on GET /dispatch, not on GET route.
    assert client.find_traces("frontend", operation="GET route", attributes={"customer.id": "123"}) == []
    assert len(client.find_traces("customer", attributes={"db.system.name": "sqlite"}, limit=1)) == 1
    assert len(client.find_traces("frontend", attributes={"service.name": "frontend"})) == 2   # resource


def test_client_on_an_empty_backend(api):
    client = QueryClient(api.query_url)
    assert requests.get(f"{api.query_url}/api/v3/services").json() == {}   # Jaeger leaves out an empty list
    assert client.services() == []
    assert client.find_traces("frontend") == []


# --- where Jaeger refuses or ignores: each backend's own answer ----------------------------

def test_search_without_num_traces(api, stored):
    response = search(api, **{"query.num_traces": None})
    if api.name == "jaeger":
        assert response.status_code == 500
        assert "search depth must be greater than 0" in error_message(response)
    else:
        assert response.status_code == 400
        assert "query.num_traces is required" in error_message(response)


def test_num_traces_below_one(api, stored):
    response = search(api, **{"query.num_traces": "0"})
    assert response.status_code == (500 if api.name == "jaeger" else 400)
    assert "greater than 0" in error_message(response)


@pytest.mark.parametrize("name, honoured, value", [
    ("query.serviceName", "query.service_name", "customer"),
    ("query.operationName", "query.operation_name", "nope"),
    ("query.durationMin", "query.duration_min", "10s"),
    ("query.numTraces", "query.num_traces", "1"),
    ("query.search_depth", "query.num_traces", "1"),
    ("query.attributes", "QueryClient.find_traces(attributes=...)", json.dumps({"customer.id": "999"})),
])
def test_parameters_jaeger_ignores(api, stored, name, honoured, value):
    """Jaeger answers as if the parameter were absent: every frontend trace, unfiltered."""
    response = search(api, **{name: value})
    if api.name == "jaeger":
        assert response.status_code == 200
        assert trace_ids(response) == {s["trace"] for s in stored}
    else:
        assert response.status_code == 400
        assert name in error_message(response) and honoured in error_message(response)


def test_camel_case_time_names(api, stored):
    now = now_base_ns() + 10_000_000_000
    response = search(api, **{"query.start_time_min": None, "query.start_time_max": None,
                              "query.startTimeMin": format_rfc3339(now - 60_000_000_000),
                              "query.startTimeMax": format_rfc3339(now)})
    assert response.status_code == 400
    if api.name == "jaeger":
        assert "query.start_time_min and query.start_time_max are required" in error_message(response)
    else:
        assert "unknown parameter query.startTimeMin" in error_message(response)
        assert "use query.start_time_min" in error_message(response)


def test_span_kind_spellings(api, stored):
    every = sorted_operations(operations(api, service="customer"))
    camel = operations(api, service="customer", spanKind="server")
    upper = operations(api, service="customer", span_kind="SERVER")
    if api.name == "jaeger":
        assert sorted_operations(camel) == every         # ignored: every kind
        assert upper.json() == {"operations": []}        # compared exactly: nothing
    else:
        assert camel.status_code == 400 and "use span_kind" in error_message(camel)
        assert upper.status_code == 400 and "server" in error_message(upper)
        assert "lower case" in error_message(upper)


# --- the embedded backend alone ----------------------------------------------------------

def test_raw_traces_shows_stored_copies(backend):
    """raw_traces=true skips the clean-up, so an exporter's retry shows twice (Jaeger's raw mode)."""
    t = new_trace_id()
    retried = span("retried", t, new_span_id(), None, 0, 5, base_ns=now_base_ns())
    post(backend, payload(("svc", [retried])))
    post(backend, payload(("svc", [retried])))
    raw = requests.get(f"{backend.query_url}/api/v3/traces/{t}", params={"raw_traces": "true"})
    assert [s["name"] for s in all_spans(raw)] == ["retried", "retried"]
    clean = requests.get(f"{backend.query_url}/api/v3/traces/{t}")
    assert [s["name"] for s in all_spans(clean)] == ["retried"]


def test_unknown_parameters_elsewhere(backend):
    wrong = requests.get(f"{backend.query_url}/api/v3/traces/{'1' * 32}", params={"startTime": "x"})
    assert wrong.status_code == 400 and "use start_time" in error_message(wrong)
    wrong = operations(backend, serviceName="frontend")
    assert wrong.status_code == 400 and "use service" in error_message(wrong)


def protobufs_json(request) -> dict:
    """The reference: protobuf's own JSON mapping, with ids turned from base64 to hex as Jaeger writes them."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rs in document.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for one in ss.get("spans", []):
                for holder in (one, *one.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if holder.get(key):
                            holder[key] = base64.b64decode(holder[key]).hex()
    return document


def test_fast_json_is_protobufs_json():
    """The one OTLP/JSON writer gives exactly protobuf's JSON mapping, field for field."""
    t = new_trace_id()
    every = span("every field", t, new_span_id(), new_span_id(), 0, 5, "CONSUMER", error=True,
                 attributes={"s": "x", "i": 7, "f": 1.5, "b": True}, events=["cache miss"], base_ns=now_base_ns())
    every.update({"traceState": "k=v", "flags": 257, "droppedAttributesCount": 1, "droppedEventsCount": 2,
                  "droppedLinksCount": 3,
                  "links": [{"traceId": new_trace_id(), "spanId": new_span_id(), "traceState": "a=b",
                             "attributes": [{"key": "l", "value": {"stringValue": "v"}}], "flags": 1}]})
    every["attributes"] += [
        {"key": "arr", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "two"}]}}},
        {"key": "empty", "value": {"arrayValue": {}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "in", "value": {"boolValue": False}}]}}},
        {"key": "bytes", "value": {"bytesValue": "AAEC"}},
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "unset", "value": {}},
    ]
    bare = {"traceId": t, "spanId": new_span_id()}
    document = payload(("svc", [every, bare]))
    document["resourceSpans"][0]["schemaUrl"] = "https://opentelemetry.io/schemas/1.26.0"
    request = decode_json(document)
    assert encode_json(request) == protobufs_json(request)
    assert encode_json(ExportTraceServiceRequest()) == protobufs_json(ExportTraceServiceRequest())


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
