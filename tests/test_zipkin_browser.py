"""Zipkin's own UI, Lens, in headless Chromium: it shows the services and spans of a trace we sent.

Lens is a React app: the page arrives empty and fetches the trace from
Zipkin's API v2 afterwards. So Chromium runs with a virtual-time budget
before it dumps the DOM, and the test reads what Lens rendered as text: the
numbers in its trace header ("Services", "Total Spans") and the
"service: span name" label of every row of its timeline.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass

import pytest
from conftest import dispatch, run_chromium, trace_id_of

from tracequest.host import procs
from tracequest.traces.client import QueryClient
from tracequest.programs.zipkin import zipkin_trace

#: Long enough for Lens to load, fetch the trace and render it on two busy cores.
VIRTUAL_TIME_MS = 5000
#: Lens draws only the timeline rows that fit the window (30 px each): tall enough for /dispatch.
WINDOW = "1400,2800"


@dataclass
class LensTrace:
    """A trace Zipkin holds: where Lens runs, the trace id, and (service, span name) per span."""

    zipkin_url: str
    trace_id: str
    spans: list[tuple[str, str]]

    @property
    def services(self) -> set[str]:
        return {service for service, _ in self.spans}


@pytest.fixture(scope="module")
def lens_trace(fan_out_lab) -> LensTrace:
    """The one place the trace comes from: a demo /dispatch through the fan-out lab's Collector."""
    trace_id = trace_id_of(dispatch(fan_out_lab))
    in_jaeger = QueryClient(fan_out_lab.query_url).wait_for_trace(trace_id, min_spans=2, settle=1.0)
    url = fan_out_lab.url("zipkin")
    assert procs.until(lambda: len(zipkin_trace(url, trace_id)) == len(in_jaeger), 30)
    return LensTrace(url, trace_id, [(s.service, s.name) for s in in_jaeger])


def page_texts(dom: str) -> list[str]:
    """The visible text pieces of a DOM dump, in document order."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)
    return [html.unescape(piece).strip() for piece in re.split(r"<[^>]+>", dom) if piece.strip()]


def after(texts: list[str], label: str) -> str:
    """The text right after ``label``: Lens writes each header figure below its name."""
    assert label in texts, f"Lens shows no {label!r}; the page says: {texts[:40]}"
    return texts[texts.index(label) + 1]


def timeline_rows(texts: list[str], trace_id: str) -> list[tuple[str, str]]:
    """(service, span name) of each timeline row: between the header and the span details."""
    rows = texts[texts.index(trace_id) + 1:texts.index("Service name")]
    return [tuple(row.split(": ", 1)) for row in rows if re.fullmatch(r"[\w.-]+: .+", row)]


def test_lens_shows_the_traces_services_and_span_count(lens_trace, chromium, tmp_path):
    dom = run_chromium(chromium, tmp_path, f"{lens_trace.zipkin_url}/zipkin/traces/{lens_trace.trace_id}",
                       f"--virtual-time-budget={VIRTUAL_TIME_MS}", "--dump-dom", window=WINDOW)
    texts = page_texts(dom)
    assert after(texts, "Trace ID") == lens_trace.trace_id
    assert after(texts, "Total Spans") == str(len(lens_trace.spans))
    assert after(texts, "Services") == str(len(lens_trace.services))
    assert len(lens_trace.spans) > 20 and len(lens_trace.services) >= 4   # a real /dispatch
    rows = timeline_rows(texts, lens_trace.trace_id)
    # Zipkin lower-cases span names; each span is one row, its service named first.
    assert Counter(rows) == Counter((service, name.lower()) for service, name in lens_trace.spans), rows
    assert {service for service, _ in rows} == lens_trace.services
