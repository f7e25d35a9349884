"""The HTML waterfall, read back with an HTML parser on designed traces."""

import re
from html.parser import HTMLParser

from otlp_payloads import BASE_NS, designed_trace, new_span_id, new_trace_id, payload, span

from tracequest.traces.model import Trace, group_traces
from tracequest.traces.otlp import parse_otlp
from tracequest.traces.waterfall_html import ERROR_COLOR, PALETTE, render_html, tick_step

# Designed trace spans: (start ms, duration ms) within a 100 ms trace.
TIMES = {"A": (0, 100), "B": (0, 40), "C": (2, 36), "D": (5, 30), "E": (40, 30), "F": (45, 50)}


class Rows(HTMLParser):
    """Collects one dict per span row: its classes, label, badges, bar style and detail text."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[dict] = []
        self._in_detail = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "details" and "tqwf-span" in classes:
            self.rows.append({"id": attrs["data-span-id"], "classes": classes, "text": "", "detail": "",
                              "badges": [], "events": []})
            self._in_detail = False
        elif not self.rows:
            return
        row = self.rows[-1]
        if "tqwf-label" in classes:
            row["indent"] = attrs["style"]
        if "tqwf-bar" in classes:
            row["bar"] = _style(attrs["style"])
        if "tqwf-event" in classes:
            row["events"].append(_style(attrs["style"]))
        if "tqwf-badge" in classes:
            row["badges"].append(classes[-1])
        if "tqwf-detail" in classes:
            self._in_detail = True

    def handle_data(self, data):
        if self.rows:
            self.rows[-1]["detail" if self._in_detail else "text"] += data + " "


def _style(text: str) -> dict:
    return dict(part.split(":", 1) for part in text.split(";") if part)


def _percent(value: str) -> float:
    assert value.endswith("%"), value
    return float(value[:-1])


def designed():
    document, ids = designed_trace()
    (trace,) = group_traces(parse_otlp(document))
    names = {span_id: name for name, span_id in ids.items()}
    return trace, ids, names


def test_one_row_per_span_in_walk_order_indented_by_depth():
    trace, ids, _ = designed()
    rows = Rows(render_html(trace)).rows
    assert [r["id"] for r in rows] == [s.span_id for s, _ in trace.walk()]
    assert [r["id"] for r in rows] == [ids[n] for n in "ABCDEF"]
    pads = [int(re.search(r"padding-left:(\d+)px", r["indent"]).group(1)) for r in rows]
    depths = [d for _, d in trace.walk()]
    assert depths == [0, 1, 2, 3, 1, 1]
    assert all(pads[i] - pads[0] == 18 * depth for i, depth in enumerate(depths))


def test_bars_are_placed_and_sized_by_time():
    trace, _, names = designed()
    for row in Rows(render_html(trace)).rows:
        start, duration = TIMES[names[row["id"]]]
        assert abs(_percent(row["bar"]["left"]) - start) < 0.001, row
        assert abs(_percent(row["bar"]["width"]) - duration) < 0.001, row


def test_critical_path_and_error_marks_sit_on_exactly_the_right_spans():
    trace, _, names = designed()
    rows = Rows(render_html(trace)).rows
    critical = {names[r["id"]] for r in rows if "tqwf-critical" in r["classes"]}
    errors = {names[r["id"]] for r in rows if "tqwf-error" in r["classes"]}
    badges = {names[r["id"]]: r["badges"] for r in rows if r["badges"]}
    assert critical == {"A", "B", "C", "D", "F"}
    assert errors == {"E"}
    assert badges == {"E": ["tqwf-badge-error"]}
    assert "error" in next(r["text"] for r in rows if names[r["id"]] == "E")


def test_bars_take_their_service_colour_and_errors_are_red():
    trace, _, names = designed()
    colours = {names[r["id"]]: r["bar"]["background"] for r in Rows(render_html(trace)).rows}
    frontend, customer = PALETTE[0], PALETTE[1]
    assert colours == {"A": frontend, "B": frontend, "C": customer, "D": customer,
                       "E": ERROR_COLOR, "F": frontend}
    assert ERROR_COLOR not in PALETTE


def test_header_counts_and_legend():
    trace, _, _ = designed()
    text = render_html(trace)
    header = re.sub(r"<[^>]+>", "", text.split('class="tqwf-legend"')[0])
    for expected in (trace.trace_id, "100.0ms total", "6 spans", "2 services", "1 root", "0 orphans", "1 error"):
        assert expected in header, expected
    legend = re.sub(r"<[^>]+>", "", text.split('class="tqwf-legend"')[1].split("tqwf-axis")[0])
    for expected in ("frontend", "customer", "error", "critical path (5 spans)"):
        assert expected in legend, expected


def test_time_axis_has_round_tick_labels_and_matching_grid_lines():
    trace, _, _ = designed()
    text = render_html(trace)
    ticks = re.findall(r'class="tqwf-tick" style="left:([\d.]+)%[^"]*">([^<]+)<', text)
    assert ticks == [("0.000", "0"), ("20.000", "20ms"), ("40.000", "40ms"), ("60.000", "60ms"),
                     ("80.000", "80ms"), ("100.000", "100ms")]
    assert '<div class="tqwf" style="--tqwf-step:20.000%">' in text
    assert [tick_step(ns) for ns in (0, 755_000_000, 1_234_000_000)] == [1, 200_000_000, 200_000_000]


def test_details_hold_facts_attributes_events_and_links():
    t = new_trace_id()
    root, child = new_span_id(), new_span_id()
    linked = (new_trace_id(), new_span_id())
    child_span = span("SELECT customers", t, child, root, 10, 30, "CLIENT", error=True,
                      attributes={"db.system.name": "sqlite", "db.rows": 3})
    child_span["events"] = [{"name": "lock acquired", "timeUnixNano": str(BASE_NS + 13_000_000),
                             "attributes": [{"key": "waiters", "value": {"intValue": "2"}}]}]
    child_span["links"] = [{"traceId": linked[0], "spanId": linked[1]}]
    document = payload(("customer", [span("GET /customer", t, root, None, 0, 50, "SERVER"), child_span]))
    (trace,) = group_traces(parse_otlp(document))
    rows = {r["id"]: r for r in Rows(render_html(trace)).rows}
    detail = " ".join(rows[child]["detail"].split())
    for expected in ("kind CLIENT", "service customer", "starts at +10.0ms", "duration 30.0ms",
                     "self time 30.0ms", "status ERROR: boom", "critical path yes", f"parent id {root}",
                     "db.system.name sqlite", "db.rows 3", '+3.0ms lock acquired {"waiters": 2}',
                     f"trace {linked[0]} span {linked[1]}"):
        assert expected in detail, (expected, detail)
    assert "self time 20.0ms" in " ".join(rows[root]["detail"].split())
    assert abs(_percent(rows[child]["events"][0]["left"]) - 26.0) < 0.001  # 13 ms of 50


def test_every_string_is_escaped():
    t = new_trace_id()
    root = new_span_id()
    nasty = span("<script>alert(1)</script>", t, root, None, 0, 10,
                 attributes={'<img src=x onerror="x">': '"quoted" & <b>bold</b>'},
                 events=["<iframe>"])
    document = payload(("<b>svc</b>", [nasty]))
    (trace,) = group_traces(parse_otlp(document))
    text = render_html(trace)
    for raw in ("<script", "<img", "<iframe", "<b>svc", "<b>bold", 'onerror="x"'):
        assert raw not in text, raw
    for escaped in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;svc&lt;/b&gt;",
                    "&quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;", "&lt;iframe&gt;"):
        assert escaped in text, escaped
    assert Rows(text).rows[0]["id"] == root


def test_styles_are_scoped_to_the_fragment():
    trace, _, _ = designed()
    style = re.search(r"<style>(.*?)</style>", render_html(trace), re.S).group(1)
    style = re.sub(r"/\*.*?\*/", "", style, flags=re.S)
    selectors = [sel.strip() for rule in style.split("}") if "{" in rule
                 for sel in rule.split("{")[0].split(",")]
    assert selectors and all(sel.startswith(".tqwf") for sel in selectors), selectors
    assert "<script" not in render_html(trace) and "http" not in style


def test_max_rows_cuts_long_traces_but_counts_every_span():
    trace, ids, _ = designed()
    text = render_html(trace, max_rows=2)
    assert [r["id"] for r in Rows(text).rows] == [ids["A"], ids["B"]]
    assert "4 more spans not shown" in text and "<b>6</b> spans" in text


def test_orphans_and_missing_roots_are_flagged():
    t = new_trace_id()
    document = payload(("x", [span("lost", t, parent=new_span_id()), span("also lost", t, parent=new_span_id())]))
    (trace,) = group_traces(parse_otlp(document))
    text = render_html(trace)
    assert all(r["badges"] == ["tqwf-badge-orphan"] for r in Rows(text).rows)
    assert re.search(r'tqwf-warn"><b>0</b> roots', text) and re.search(r'tqwf-warn"><b>2</b> orphans', text)


def test_zero_length_trace_still_draws():
    trace = Trace(parse_otlp(payload(("x", [span("instant", new_trace_id(), dur_ms=0)]))))
    (row,) = Rows(render_html(trace)).rows
    assert row["bar"]["left"] == "0.000%" and row["bar"]["width"] == "0.000%"


def test_jupyter_uses_the_html_waterfall():
    trace, _, _ = designed()
    assert trace._repr_html_() == render_html(trace)
