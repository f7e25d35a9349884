"""Shared fixtures: an in-process embedded backend, and the lab on free ports."""

from __future__ import annotations

import pytest

from tracequest.backend import start_backend
from tracequest.client import QueryClient


@pytest.fixture
def backend():
    """A fresh embedded backend on free ports, in this process."""
    with start_backend(":memory:", grpc_port=0, http_port=0, query_port=0) as running:
        yield running


@pytest.fixture
def client(backend) -> QueryClient:
    return QueryClient(backend.query_url)
