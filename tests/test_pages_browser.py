"""The embedded backend's pages, over HTTP and in a real headless Chromium.

The HTTP tests always run. The browser tests need Debian's Chromium; they take
screenshots and read the pixels back, so they prove the waterfall is really
drawn (bars where the span times say), not just present in the markup.
"""

from __future__ import annotations

import json
import re
import struct
import zlib

import pytest
import requests
from conftest import run_chromium
from otlp_payloads import designed_trace, now_base_ns

from tracequest.backend import pages
from tracequest.traces.model import group_traces
from tracequest.traces.otlp import parse_otlp
from tracequest.traces.waterfall_html import ERROR_COLOR, PALETTE

FRONTEND, CUSTOMER = PALETTE[0], PALETTE[1]
# Designed trace: (colour, start ms, duration ms) of every bar, in a 100 ms trace.
BARS = [(FRONTEND, 0, 100), (FRONTEND, 0, 40), (CUSTOMER, 2, 36), (CUSTOMER, 5, 30),
        (ERROR_COLOR, 40, 30), (FRONTEND, 45, 50)]


def post(backend, document) -> None:
    response = requests.post(f"{backend.otlp_http_endpoint}/v1/traces", data=json.dumps(document),
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 200, response.text


@pytest.fixture
def stored(backend) -> list[str]:
    """Two designed traces in the backend, newest first; returns their ids.

    Trace lists put the trace received last first, as Jaeger's search does.
    """
    ids = []
    for offset in (0, 1_000_000_000):
        document, names = designed_trace(base_ns=now_base_ns() + offset)
        post(backend, document)
        ids.insert(0, names["trace"])
    return ids


# --- over HTTP ----------------------------------------------------------------

def test_home_lists_recent_traces(backend, stored):
    text = requests.get(f"{backend.query_url}/", timeout=5).text
    rows = re.findall(r'<tr class="trace-row">(.*?)</tr>', text)
    assert len(rows) == 2
    assert f'href="/trace/{stored[0]}"' in rows[0] and f'href="/trace/{stored[1]}"' in rows[1]
    cells = [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[0])]
    assert cells[1:6] == [["frontend"], ["GET", "/dispatch"], ["100.0ms"], ["6"], ["1"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", " ".join(cells[0]))


def test_home_without_traces_says_how_to_make_one(backend):
    assert "No traces yet" in requests.get(f"{backend.query_url}/", timeout=5).text


def test_trace_page_draws_the_waterfall_and_links_the_text_version(backend, stored):
    response = requests.get(f"{backend.query_url}/trace/{stored[0].upper()}", timeout=5)
    assert response.status_code == 200
    assert response.text.count('<details class="tqwf-span') == 6
    assert f'href="/trace/{stored[0]}/text"' in response.text
    text = requests.get(f"{backend.query_url}/trace/{stored[0]}/text", timeout=5)
    assert text.headers["Content-Type"].startswith("text/plain")
    assert text.text.startswith(f"trace {stored[0]}  100.0ms  6 spans")


def test_unknown_trace_is_404(backend):
    unknown = "ab" * 16
    assert requests.get(f"{backend.query_url}/trace/{unknown}", timeout=5).status_code == 404
    assert requests.get(f"{backend.query_url}/trace/{unknown}/text", timeout=5).status_code == 404


def test_dependencies_page(backend, stored):
    text = requests.get(f"{backend.query_url}/dependencies", timeout=5).text
    assert "<svg" in text and "2 calls" in text
    assert "frontend -&gt; customer      2 calls" in text
    assert "from the 2 most recent traces" in text


def test_trace_html_is_the_html_waterfall():
    (trace,) = group_traces(parse_otlp(designed_trace()[0]))
    assert pages.trace_html(trace).startswith('<div class="tqwf" ')


# --- in Chromium --------------------------------------------------------------

def screenshot(binary: str, tmp_path, url: str) -> list[list[tuple]]:
    target = tmp_path / "shot.png"
    run_chromium(binary, tmp_path, url, f"--screenshot={target}")
    return decode_png(target.read_bytes())


def test_browser_shows_bars_where_the_span_times_say(backend, stored, chromium, tmp_path):
    pixels = screenshot(chromium, tmp_path, f"{backend.query_url}/trace/{stored[0]}")
    bars = find_bars(pixels, {FRONTEND, CUSTOMER, ERROR_COLOR})
    assert [colour for colour, _, _ in bars] == [colour for colour, _, _ in BARS], bars
    root_left, root_right = bars[0][1], bars[0][2]
    px_per_ms = (root_right - root_left) / 100
    for (_, left, right), (_, start_ms, duration_ms) in zip(bars, BARS):
        assert abs(left - (root_left + start_ms * px_per_ms)) <= 3, (left, start_ms)
        assert abs((right - left) - duration_ms * px_per_ms) <= 3, (right - left, duration_ms)


def test_browser_colours_come_in_the_expected_proportions(backend, stored, chromium, tmp_path):
    pixels = screenshot(chromium, tmp_path, f"{backend.query_url}/trace/{stored[0]}")
    counts = colour_counts(pixels, {FRONTEND, CUSTOMER, ERROR_COLOR})
    # Bar time per colour: frontend 190 ms, customer 66 ms, error 30 ms. The legend,
    # the service dots and the error badge add a little on top.
    assert counts[FRONTEND] / counts[CUSTOMER] == pytest.approx(190 / 66, rel=0.1), counts
    assert counts[ERROR_COLOR] / counts[CUSTOMER] == pytest.approx(30 / 66, rel=0.35), counts
    assert counts[ERROR_COLOR] > 0.1 * counts[CUSTOMER]


def test_browser_dom_has_one_row_per_span(backend, stored, chromium, tmp_path):
    dom = run_chromium(chromium, tmp_path, f"{backend.query_url}/trace/{stored[0]}", "--dump-dom")
    assert len(re.findall(r'<details class="tqwf-span[ "]', dom)) == 6
    assert len(re.findall(r'<details class="tqwf-span tqwf-critical', dom)) == 5
    assert len(re.findall(r'<details class="[^"]*tqwf-error', dom)) == 1


def test_browser_home_page_lists_the_traces(backend, stored, chromium, tmp_path):
    dom = run_chromium(chromium, tmp_path, f"{backend.query_url}/", "--dump-dom")
    assert len(re.findall(r'<tr class="trace-row">', dom)) == 2
    pixels = screenshot(chromium, tmp_path, f"{backend.query_url}/")
    durations = find_bars(pixels, {pages.DURATION_BAR_COLOR}, min_length=60, min_height=4)
    assert len(durations) == 2, durations                        # one duration bar per trace
    assert colour_counts(pixels, {ERROR_COLOR})[ERROR_COLOR] > 100  # the red error badges


# --- reading the screenshots ---------------------------------------------------

def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def colour_counts(pixels, colours) -> dict[str, int]:
    wanted = {hex_rgb(c): c for c in colours}
    counts = dict.fromkeys(colours, 0)
    for row in pixels:
        for pixel in row:
            if pixel in wanted:
                counts[wanted[pixel]] += 1
    return counts


def find_bars(pixels, colours, min_length=40, min_height=8) -> list[tuple[str, int, int]]:
    """Solid rectangles of the given colours, top to bottom, as (colour, left x, right x).

    A bar is the same horizontal run of one colour repeated on consecutive rows;
    short runs (text, dots, legend swatches) are ignored.
    """
    wanted = {hex_rgb(c): c for c in colours}
    open_runs: dict[tuple, int] = {}   # (colour, left, right) -> rows seen so far
    bars = []
    for row in pixels:
        runs = set(_runs(row, wanted, min_length))
        for run, height in list(open_runs.items()):
            if run not in runs:
                del open_runs[run]
                if height >= min_height:
                    bars.append(run)
        for run in runs:
            open_runs[run] = open_runs.get(run, 0) + 1
    bars.extend(run for run, height in open_runs.items() if height >= min_height)
    return bars


def _runs(row, wanted, min_length):
    start = 0
    for x in range(1, len(row) + 1):
        if x == len(row) or row[x] != row[start]:
            if row[start] in wanted and x - start >= min_length:
                yield wanted[row[start]], start, x
            start = x


def decode_png(data: bytes) -> list[list[tuple]]:
    """Rows of (r, g, b) pixels from an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour_type in (2, 6) and not interlace, (depth, colour_type, interlace)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, channels)
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return rows


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> bytearray:
    """Undo one PNG row filter (None, Sub, Up, Average, Paeth)."""
    if kind == 0:
        return line
    if kind == 2:
        return bytearray((a + b) & 0xFF for a, b in zip(line, above))
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + above[i]) // 2) & 0xFF
        elif kind == 4:
            up_left = above[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _paeth(left, above[i], up_left)) & 0xFF
        else:
            raise ValueError(f"unknown PNG filter {kind}")
    return line


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c
