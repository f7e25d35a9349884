"""Shared fixtures: an in-process embedded backend, and the lab on free ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tracequest.backend import start_backend
from tracequest.binaries import JaegerBuildError, ensure_jaeger, jaeger_missing_reason
from tracequest.client import QueryClient
from tracequest.lab import Lab, LabSettings
from tracequest.ports import Ports

# Wrong learner solutions, run by the meta-tests as a learner's files: never collected here.
collect_ignore = ["quest_cases"]


@pytest.fixture
def backend():
    """A fresh embedded backend on free ports, in this process."""
    with start_backend(":memory:", grpc_port=0, http_port=0, query_port=0) as running:
        yield running


@pytest.fixture
def client(backend) -> QueryClient:
    return QueryClient(backend.query_url)


@pytest.fixture(scope="session")
def jaeger_bin() -> Path:
    """The real Jaeger binary, built once per machine; fail on CI, skip elsewhere."""
    try:
        return ensure_jaeger(log=lambda line: print(f"[jaeger build] {line}"))
    except JaegerBuildError as exc:
        reason = jaeger_missing_reason()
        message = reason if str(exc) == reason else f"{reason} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """The whole lab (embedded backend + four services) on free ports, for the session."""
    running = Lab(LabSettings(ports=Ports.free()), home=tmp_path_factory.mktemp("lab"))
    running.up(log=lambda *_: None)
    yield running
    running.down(log=lambda *_: None)


@pytest.fixture(scope="session")
def lab_client(lab) -> QueryClient:
    return QueryClient(lab.query_url)


def dispatch(lab, customer="123", **params) -> requests.Response:
    """One /dispatch request to a running lab."""
    return requests.get(f"{lab.frontend_url}/dispatch", params={"customer": customer, **params}, timeout=30)


def trace_id_of(response: requests.Response) -> str:
    """The trace id the frontend reports in its traceresponse header."""
    header = response.headers.get("traceresponse", "")
    parts = header.split("-")
    assert len(parts) == 4, f"no traceresponse header in the answer: {dict(response.headers)}"
    return parts[1]
