"""Scaling the gateway out: round robin breaks traces, trace-id routing keeps them whole.

Real processes only: Jaeger, two gateways (compose/collector/gateway.yaml,
tail sampling) and one agent (agent-round-robin.yaml or agent-trace-id.yaml),
all from the lab's Collector build, on free ports. The same designed traffic
goes through each routing; what Jaeger stores is counted per kind of trace.
"""

from __future__ import annotations

import pytest

from tracequest.scale_out import (
    DEFAULT_COUNTS,
    GATEWAYS,
    TRAFFIC_SERVICES,
    ScaleOut,
    collector_metric,
    count_stored,
    send_split_traces,
)

ACCEPTED = "otelcol_receiver_accepted_spans"
SPANS_PER_TRACE = len(TRAFFIC_SERVICES)


def run_routing(routing: str, home):
    """Start the topology once for a routing, send the mix, count; keep it up for the asserts."""
    topo = ScaleOut(routing, home=home, decision_wait="1s").up(timeout=60)
    try:
        sent = send_split_traces(topo.endpoint, DEFAULT_COUNTS)
        outcome = count_stored(topo.client, sent, routing, not_before=3.5)
        accepted = {g: collector_metric(topo.metrics_url(g), ACCEPTED) for g in GATEWAYS}
    finally:
        topo.down()
    return outcome, accepted


@pytest.fixture(scope="module")
def round_robin(collector_bin, tmp_path_factory):
    return run_routing("round-robin", tmp_path_factory.mktemp("round-robin"))


@pytest.fixture(scope="module")
def trace_id(collector_bin, tmp_path_factory):
    return run_routing("trace-id", tmp_path_factory.mktemp("trace-id"))


def spans_sent() -> int:
    return sum(DEFAULT_COUNTS.values()) * SPANS_PER_TRACE


@pytest.mark.parametrize("which", ["round_robin", "trace_id"])
def test_both_gateways_share_the_load(request, which):
    """Guards the comparison: every span reached a gateway, and each got a fair share."""
    _, accepted = request.getfixturevalue(which)
    assert sum(accepted.values()) == spans_sent(), accepted
    for gateway, count in accepted.items():
        assert count >= spans_sent() * 0.25, (gateway, accepted)


def test_round_robin_stores_partial_traces_and_breaks_errors_and_slow_ones(round_robin):
    outcome, _ = round_robin
    assert outcome.partial_total > 0, outcome
    broken = {kind: outcome.sent[kind] - outcome.whole[kind] for kind in ("error", "slow")}
    assert sum(broken.values()) > 0, outcome
    # The gateway holding the failing span keeps it: an error is never lost entirely,
    # only its trace is cut.
    assert outcome.whole["error"] + outcome.partial["error"] == outcome.sent["error"], outcome


def test_trace_id_routing_keeps_every_error_and_slow_trace_whole(trace_id):
    outcome, _ = trace_id
    assert outcome.partial_total == 0, outcome
    assert outcome.whole["error"] == outcome.sent["error"], outcome
    assert outcome.whole["slow"] == outcome.sent["slow"], outcome
    # Tail sampling still works: most normal traces are dropped (10 % are kept).
    assert outcome.whole["normal"] < outcome.sent["normal"] / 2, outcome
