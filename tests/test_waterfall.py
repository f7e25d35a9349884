"""The terminal waterfall, on a designed trace."""

from otlp_payloads import designed_trace, new_span_id, payload, span

from tracequest.traces.model import group_traces
from tracequest.traces.otlp import parse_otlp
from tracequest.traces.waterfall import format_duration


def rows(text):
    return text.splitlines()[1:-1]


def test_rows_follow_the_tree_with_indentation_and_marks():
    document, _ = designed_trace()
    (trace,) = group_traces(parse_otlp(document))
    text = trace.waterfall(width=120)
    lines = rows(text)
    assert len(lines) == 6
    assert lines[0].startswith("*  GET /dispatch")
    assert "      SELECT customers" in lines[3]           # depth 3
    driver = next(line for line in lines if "GET driver" in line)
    assert driver.startswith(" !"), driver                 # error, not on the critical path
    assert "30.0ms" in driver and "frontend" in driver
    assert text.splitlines()[0].startswith(f"trace {trace.trace_id}  100.0ms  6 spans  2 services (1 errors)")


def test_bars_are_placed_and_sized_by_time():
    document, _ = designed_trace()
    (trace,) = group_traces(parse_otlp(document))
    lines = rows(trace.waterfall(width=122))  # 56-character bars
    root = next(line for line in lines if "GET /dispatch" in line).split("|")[1]
    route = next(line for line in lines if "GET route" in line).split("|")[1]
    assert root.count("█") == len(root)
    assert route.index("█") == int(0.45 * len(route))
    assert route.count("█") == round(0.5 * len(route))


def test_orphans_are_labelled():
    document = payload(("x", [span("lost", "ab" * 16, parent=new_span_id())]))
    (trace,) = group_traces(parse_otlp(document))
    assert "(orphan)" in trace.waterfall() and "1 orphans" in trace.waterfall()


def test_format_duration():
    assert [format_duration(n) for n in (850_000, 12_345_678, 1_420_000_000)] == ["850us", "12.3ms", "1.42s"]
