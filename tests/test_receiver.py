"""The embedded OTLP receiver: good payloads stored, bad ones refused whole."""

import gzip
import json
import threading

import grpc
import pytest
import requests
from otlp_payloads import designed_trace, new_trace_id, payload, span
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tracequest.otlp import decode_json
from tracequest.receiver import create_otlp_http_app
from tracequest.store import SpanStore

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def post(backend, data, headers):
    return requests.post(f"{backend.otlp_http_endpoint}/v1/traces", data=data, headers=headers, timeout=5)


def test_json_and_protobuf_are_stored(backend):
    document, _ = designed_trace()
    assert post(backend, json.dumps(document), JS).status_code == 200
    other, _ = designed_trace()
    response = post(backend, decode_json(other).SerializeToString(), PB)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-protobuf"
    assert backend.store.span_count() == 12


def test_gzip_bodies_are_accepted(backend):
    document, _ = designed_trace()
    body = gzip.compress(decode_json(document).SerializeToString())
    assert post(backend, body, {**PB, "Content-Encoding": "gzip"}).status_code == 200
    assert backend.store.span_count() == 6


@pytest.mark.parametrize("body, headers, status, words", [
    (b"\xff\x00garbage", PB, 400, "not an OTLP protobuf"),
    (b"{not json", JS, 400, "not valid JSON"),
    (b"[1, 2]", JS, 400, "must be an object"),
    (b'{"resourceSpans": 5}', JS, 400, "structure is wrong"),
    (json.dumps(payload(("s", [span("x", "abcd")]))).encode(), JS, 400, "invalid trace id"),
    (json.dumps(payload(("s", [span("x", "zz" * 16)]))).encode(), JS, 400, "is not hex"),
    (json.dumps(payload(("s", [span("x", new_trace_id(), span_id="00" * 8)]))).encode(), JS, 400, "invalid span id"),
    (b"hello", {"Content-Type": "text/plain"}, 415, "unsupported Content-Type"),
    (b"not gzip", {**PB, "Content-Encoding": "gzip"}, 400, "not valid gzip"),
    (b"x", {**PB, "Content-Encoding": "br"}, 400, "unsupported Content-Encoding"),
])
def test_bad_payloads_answer_4xx_and_store_nothing(backend, body, headers, status, words):
    good, _ = designed_trace()
    post(backend, json.dumps(good), JS)
    response = post(backend, body, headers)
    assert response.status_code == status, response.text
    assert words in response.text
    assert backend.store.span_count() == 6          # what was stored stays
    again, _ = designed_trace()
    assert post(backend, json.dumps(again), JS).status_code == 200   # and the receiver still works


def test_one_bad_span_refuses_the_whole_export(backend):
    t = new_trace_id()
    document = payload(("s", [span("good", t), span("bad", "12")]))
    assert post(backend, json.dumps(document), JS).status_code == 400
    assert backend.store.span_count() == 0


def test_oversized_payloads_answer_413():
    store = SpanStore()
    app = create_otlp_http_app(store, max_body_bytes=2000).test_client()
    document, _ = designed_trace()
    big = json.dumps(document) + " " * 3000
    assert app.post("/v1/traces", data=big, headers=JS).status_code == 413
    bomb = gzip.compress(b" " * 100_000)
    assert app.post("/v1/traces", data=bomb, headers={**JS, "Content-Encoding": "gzip"}).status_code == 413
    assert store.span_count() == 0


def test_wrong_method_and_path(backend):
    assert requests.get(f"{backend.otlp_http_endpoint}/v1/traces", timeout=5).status_code == 405
    assert requests.post(f"{backend.otlp_http_endpoint}/v1/metrics", data=b"", timeout=5).status_code == 404


def test_grpc_rejects_invalid_ids_and_stores_valid(backend):
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{backend.grpc_port}"))
    good, _ = designed_trace()
    stub.Export(decode_json(good), timeout=5)
    bad = decode_json(good)
    bad.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01\x02"
    with pytest.raises(grpc.RpcError) as failure:
        stub.Export(bad, timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid trace id" in failure.value.details()
    assert backend.store.span_count() == 6


def test_concurrent_exporters_lose_nothing(backend):
    def exporter(n):
        session = requests.Session()
        for _ in range(n):
            t = new_trace_id()
            spans = [span(f"s{i}", t, start_ms=i) for i in range(50)]
            assert session.post(f"{backend.otlp_http_endpoint}/v1/traces",
                                data=decode_json(payload(("load", spans))).SerializeToString(),
                                headers=PB, timeout=10).status_code == 200

    threads = [threading.Thread(target=exporter, args=(20,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.store.span_count() == 8 * 20 * 50
