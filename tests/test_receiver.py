"""The embedded OTLP receiver: good payloads stored, bad ones refused whole, as the OTLP spec says.

Every case runs over real HTTP or gRPC against a backend started on free ports.
"""

import functools
import gzip
import http.client
import json
import re
import subprocess
import sys
import threading

import grpc
import pytest
import requests
from google.protobuf import json_format
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status
from otlp_payloads import designed_trace, new_trace_id, payload, span
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracequest.backend import start_backend
from tracequest.traces.otlp import decode_json, encode_json
from tracequest.backend.receiver import GRPC_SERVICE, MAX_BODY_BYTES, create_otlp_http_app, start_grpc_receiver
from tracequest.backend.store import SpanStore

PROTOBUF, JSON = "application/x-protobuf", "application/json"
PB = {"Content-Type": PROTOBUF}
JS = {"Content-Type": JSON}
OVER_LIMIT = MAX_BODY_BYTES + 1024 * 1024     # 17 MiB, the size that used to be cut and stored


def post(backend, data, headers, path="/v1/traces"):
    return requests.post(f"{backend.otlp_http_endpoint}{path}", data=data, headers=headers, timeout=30)


def rpc_status(response) -> Status:
    """The google.rpc.Status of an error reply, read in the encoding its Content-Type names."""
    media_type = response.headers["Content-Type"]
    if media_type == PROTOBUF:
        return Status.FromString(response.content)
    assert media_type == JSON, media_type
    document = response.json()
    assert set(document) == {"code", "message", "details"}, document
    return json_format.ParseDict(document, Status())


def chunks(data: bytes, size: int = 64 * 1024):
    """A generator body: requests sends it chunked, with no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


@functools.cache
def big_protobuf_export(total_bytes: int) -> bytes:
    """Valid spans, each with a 1 MiB attribute, adding up to more than total_bytes."""
    request = ExportTraceServiceRequest()
    while request.ByteSize() <= total_bytes:
        document = payload(("big", [span("big", new_trace_id(), attributes={"blob": "x" * (1024 * 1024)})]))
        request.MergeFrom(decode_json(document))
    return request.SerializeToString()


def deeply_nested_attribute(depth: int) -> bytes:
    """A valid-looking export whose one attribute is an array nested `depth` deep."""
    value = AnyValue(string_value="bottom")
    for _ in range(depth):
        outer = AnyValue()
        outer.array_value.values.add().CopyFrom(value)
        value = outer
    request = decode_json(designed_trace()[0])
    attribute = request.resource_spans[0].resource.attributes.add()
    attribute.key = "deep"
    attribute.value.CopyFrom(value)
    return request.SerializeToString()


def test_json_and_protobuf_are_stored(backend):
    document, _ = designed_trace()
    assert post(backend, json.dumps(document), JS).status_code == 200
    other, _ = designed_trace()
    response = post(backend, decode_json(other).SerializeToString(), PB)
    assert response.status_code == 200 and response.headers["Content-Type"] == PROTOBUF
    assert backend.store.span_count() == 12


def test_gzip_bodies_are_accepted(backend):
    document, _ = designed_trace()
    body = gzip.compress(decode_json(document).SerializeToString())
    assert post(backend, body, {**PB, "Content-Encoding": "gzip"}).status_code == 200
    assert backend.store.span_count() == 6


def _deep_json_inside_otlp(depth: int) -> bytes:
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"x"}' + "]}}" * depth
    return ('{"resourceSpans":[{"resource":{"attributes":[{"key":"deep","value":' + value + "}]}}]}").encode()


# (body, headers, HTTP status, google.rpc.Code, words in the message)
MALFORMED = {
    "protobuf garbage": (b"\xff\x00garbage", PB, 400, code_pb2.INVALID_ARGUMENT, "not an OTLP protobuf"),
    "JSON syntax": (b"{not json", JS, 400, code_pb2.INVALID_ARGUMENT, "not valid JSON"),
    "JSON not an object": (b"[1, 2]", JS, 400, code_pb2.INVALID_ARGUMENT, "must be an object"),
    "JSON wrong shape": (b'{"resourceSpans": 5}', JS, 400, code_pb2.INVALID_ARGUMENT, "structure is wrong"),
    "short trace id": (json.dumps(payload(("s", [span("x", "abcd")]))).encode(), JS, 400,
                       code_pb2.INVALID_ARGUMENT, "invalid trace id"),
    "trace id not hex": (json.dumps(payload(("s", [span("x", "zz" * 16)]))).encode(), JS, 400,
                         code_pb2.INVALID_ARGUMENT, "is not hex"),
    "zero span id": (json.dumps(payload(("s", [span("x", new_trace_id(), span_id="00" * 8)]))).encode(), JS, 400,
                     code_pb2.INVALID_ARGUMENT, "invalid span id"),
    "100k nested JSON arrays": (b"[" * 100_000 + b"]" * 100_000, JS, 400, code_pb2.INVALID_ARGUMENT, "nested"),
    "deep JSON inside OTLP": (_deep_json_inside_otlp(400), JS, 400, code_pb2.INVALID_ARGUMENT, ""),
    "deep protobuf attribute": (deeply_nested_attribute(300), PB, 400, code_pb2.INVALID_ARGUMENT,
                                "not an OTLP protobuf"),
    "text/plain": (b"hello", {"Content-Type": "text/plain"}, 415, code_pb2.INVALID_ARGUMENT,
                   "unsupported Content-Type"),
    "no Content-Type": (b"hello", {}, 415, code_pb2.INVALID_ARGUMENT, "no Content-Type"),
    "not gzip": (b"not gzip", {**PB, "Content-Encoding": "gzip"}, 400, code_pb2.INVALID_ARGUMENT, "not valid gzip"),
    "brotli": (b"x", {**PB, "Content-Encoding": "br"}, 400, code_pb2.INVALID_ARGUMENT,
               "unsupported Content-Encoding"),
    "gzip bomb": (gzip.compress(b" " * OVER_LIMIT), {**JS, "Content-Encoding": "gzip"}, 413,
                  code_pb2.RESOURCE_EXHAUSTED, "decompressed payload is over"),
    "17 MiB JSON": (json.dumps(designed_trace()[0]).encode() + b" " * OVER_LIMIT, JS, 413,
                    code_pb2.RESOURCE_EXHAUSTED, f"over {MAX_BODY_BYTES} bytes"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_payloads_answer_a_status_and_store_nothing(backend, case):
    body, headers, status, code, words = MALFORMED[case]
    good, _ = designed_trace()
    assert post(backend, json.dumps(good), JS).status_code == 200
    response = post(backend, body, headers)
    assert response.status_code == status, response.text[:300]
    # OTLP/HTTP: a google.rpc.Status in the request's encoding; JSON when the encoding is unknown.
    expected_type = PROTOBUF if headers.get("Content-Type") == PROTOBUF else JSON
    assert response.headers["Content-Type"] == expected_type
    reply = rpc_status(response)
    assert reply.code == code and words in reply.message, reply
    assert backend.store.span_count() == 6          # what was stored stays
    again, _ = designed_trace()
    assert post(backend, json.dumps(again), JS).status_code == 200   # and the receiver still works
    assert backend.store.span_count() == 12


def test_one_bad_span_refuses_the_whole_export(backend):
    t = new_trace_id()
    document = payload(("s", [span("good", t), span("bad", "12")]))
    assert post(backend, json.dumps(document), JS).status_code == 400
    assert backend.store.span_count() == 0


@pytest.mark.parametrize("media_type", [JSON, PROTOBUF])
@pytest.mark.parametrize("sending", ["chunked", "with Content-Length"])
def test_oversized_valid_spans_are_refused_whole(backend, media_type, sending):
    """Over the limit is 413 however it is sent: a chunked upload used to be cut and its first spans stored."""
    good, _ = designed_trace()
    post(backend, json.dumps(good), JS)
    body = big_protobuf_export(OVER_LIMIT)
    if media_type == JSON:
        body = json.dumps(encode_json(ExportTraceServiceRequest.FromString(body))).encode()
    response = post(backend, chunks(body) if sending == "chunked" else body, {"Content-Type": media_type})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == media_type
    assert rpc_status(response).code == code_pb2.RESOURCE_EXHAUSTED
    assert backend.store.span_count() == 6
    assert post(backend, json.dumps(designed_trace()[0]), JS).status_code == 200


def test_a_chunked_body_under_the_limit_is_stored(backend):
    document, _ = designed_trace()
    body = decode_json(document).SerializeToString()
    assert post(backend, chunks(body, size=100), PB).status_code == 200
    assert backend.store.span_count() == 6


def test_the_app_checks_the_limit_without_waitress():
    """The Flask app enforces the limit itself too, for any WSGI server that hands it the body."""
    store = SpanStore()
    app = create_otlp_http_app(store, max_body_bytes=2000).test_client()
    document, _ = designed_trace()
    big = json.dumps(document) + " " * 3000
    response = app.post("/v1/traces", data=big, headers=JS)
    assert response.status_code == 413 and response.json["code"] == code_pb2.RESOURCE_EXHAUSTED
    bomb = gzip.compress(b" " * 100_000)
    assert app.post("/v1/traces", data=bomb, headers={**JS, "Content-Encoding": "gzip"}).status_code == 413
    assert store.span_count() == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_anything_but_post_is_405_with_allow(backend, method):
    response = requests.request(method, f"{backend.otlp_http_endpoint}/v1/traces", timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    reply = rpc_status(response)
    assert reply.code == code_pb2.UNIMPLEMENTED and "POST /v1/traces" in reply.message


@pytest.mark.parametrize("headers, media_type", [({}, JSON), (PB, PROTOBUF), (JS, JSON)])
def test_other_paths_are_404_in_the_request_encoding(backend, headers, media_type):
    response = post(backend, b"", headers, path="/v1/metrics")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == media_type
    assert rpc_status(response).code == code_pb2.NOT_FOUND


def test_connections_are_kept_alive(backend):
    """One TCP connection carries many exports, as exporters expect of a production server."""
    connection = http.client.HTTPConnection(backend.host, backend.http_port, timeout=5)
    sockets = set()
    try:
        for _ in range(3):
            body = decode_json(designed_trace()[0]).SerializeToString()
            connection.request("POST", "/v1/traces", body=body, headers=PB)
            response = connection.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            sockets.add(connection.sock)
    finally:
        connection.close()
    assert len(sockets) == 1
    assert backend.store.span_count() == 18


def test_stop_closes_every_listener_promptly():
    backend = start_backend(":memory:", grpc_port=0, http_port=0, query_port=0)
    ports = {backend.grpc_port, backend.http_port, backend.query_port}
    assert len(ports) == 3 and 0 not in ports
    idle = http.client.HTTPConnection(backend.host, backend.http_port, timeout=5)
    idle.request("POST", "/v1/traces", body=json.dumps(designed_trace()[0]), headers=JS)
    assert idle.getresponse().read() == b"{}"          # an idle keep-alive connection stays open
    assert requests.get(f"{backend.query_url}/api/v3/services", timeout=5).status_code == 200
    stopper = threading.Thread(target=backend.stop)
    stopper.start()
    stopper.join(timeout=10)
    assert not stopper.is_alive(), "stop() hung"
    for port in (backend.http_port, backend.query_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{backend.host}:{port}/", timeout=2)
    idle.close()


# --- gRPC ---------------------------------------------------------------------

def raw_export(port: int):
    """TraceService/Export taking bytes as they are, to send what no stub would."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, channel.unary_unary(f"/{GRPC_SERVICE}/Export",
                                        response_deserializer=ExportTraceServiceResponse.FromString)


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


@pytest.mark.parametrize("body", [b"\xff\x00garbage", deeply_nested_attribute(300)], ids=["garbage", "deep"])
def test_grpc_undecodable_message_is_invalid_argument(backend, body):
    channel, export = raw_export(backend.grpc_port)
    with channel:
        export(decode_json(designed_trace()[0]).SerializeToString(), timeout=5)
        with pytest.raises(grpc.RpcError) as failure:
            export(body, timeout=5)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT   # not INTERNAL
        assert "not an OTLP protobuf" in failure.value.details()
        export(decode_json(designed_trace()[0]).SerializeToString(), timeout=5)
    assert backend.store.span_count() == 12


def test_grpc_oversized_message_is_resource_exhausted(backend):
    channel, export = raw_export(backend.grpc_port)
    with channel, pytest.raises(grpc.RpcError) as failure:
        export(big_protobuf_export(OVER_LIMIT), timeout=30)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert backend.store.span_count() == 0


class GatedStore(SpanStore):
    """A real store whose add() waits for a gate: an export that is still being stored."""

    def __init__(self):
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()

    def add(self, request):
        self.entered.set()
        self.gate.wait(timeout=30)
        return super().add(request)


def test_grpc_overload_is_resource_exhausted():
    store = GatedStore()
    server, port = start_grpc_receiver(store, "127.0.0.1", 0, workers=1, max_concurrent_rpcs=1)
    channel, export = raw_export(port)
    try:
        body = decode_json(designed_trace()[0]).SerializeToString()
        first = export.future(body, timeout=30)
        assert store.entered.wait(timeout=10)
        with pytest.raises(grpc.RpcError) as failure:
            export(body, timeout=10)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        store.gate.set()
        first.result()
        assert store.span_count() == 6                    # the refused export stored nothing
        export(body, timeout=10)                          # and with room again, exports go through
        assert store.span_count() == 12
    finally:
        store.gate.set()
        channel.close()
        server.stop(0)
        store.close()


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


# --- retention options ----------------------------------------------------------

def test_retention_options_reach_the_store():
    with start_backend(":memory:", grpc_port=0, http_port=0, query_port=0, max_spans=12, max_age_s=0) as backend:
        for _ in range(4):
            document, ids = designed_trace()
            assert post(backend, json.dumps(document), JS).status_code == 200
        backend.store.enforce_retention()
        kept = backend.store.span_count()
        assert 0 < kept <= 12 and kept % 6 == 0          # whole six-span traces only
        assert backend.store.traces(limit=1)[0].trace_id == ids["trace"]   # the newest stays


def _start_backend_process(tmp_path, *options):
    return subprocess.Popen(
        [sys.executable, "-m", "tracequest.backend", "--db", str(tmp_path / "spans.db"),
         "--grpc-port", "0", "--http-port", "0", "--query-port", "0", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_backend_process_takes_retention_options(tmp_path):
    process = _start_backend_process(tmp_path, "--max-spans", "100", "--max-age", "1h30m")
    try:
        for line in process.stderr:
            found = re.search(r"OTLP HTTP on ([\d.]+):(\d+), query API on (\S+)", line)
            if found:
                break
        else:
            pytest.fail("the backend process ended before it was serving")
        host, port, query_url = found.groups()
        response = requests.post(f"http://{host}:{port}/v1/traces", data=json.dumps(designed_trace()[0]),
                                 headers=JS, timeout=5)
        assert response.status_code == 200
        assert requests.get(f"{query_url}/api/v3/services", timeout=5).json()["services"]
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


@pytest.mark.parametrize("option, value", [("--max-age", "90 minutes"), ("--max-spans", "-5")])
def test_backend_process_refuses_bad_retention_values(tmp_path, option, value):
    process = _start_backend_process(tmp_path, option, value)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"argument {option}" in stderr and value in stderr
