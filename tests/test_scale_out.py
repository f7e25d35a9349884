"""Scaling the gateway out: round robin breaks traces, trace-id routing keeps them whole.

Real processes only: Jaeger, two gateways (compose/collector/gateway.yaml,
tail sampling) and one agent (agent-round-robin.yaml or agent-trace-id.yaml),
all from the lab's Collector build, on free ports. The same designed traffic
goes through each routing; what Jaeger stores is counted per kind of trace.
"""

from __future__ import annotations

import itertools

import pytest
import requests

from tracequest.host import procs
from tracequest.traces.client import QueryClient
from tracequest.lab import Lab, LabSettings
from tracequest.host.ports import Ports

from tracequest.lab.scale_out import DEFAULT_COUNTS, TRAFFIC_SERVICES, count_stored, overload, send_split_traces
from tracequest.lab.topology import GATEWAYS, collector_metric, ScaleOut

ACCEPTED = "otelcol_receiver_accepted_spans"
REFUSED = "otelcol_receiver_refused_spans"
SPANS_PER_TRACE = len(TRAFFIC_SERVICES)


def run_routing(routing: str, home):
    """Start the topology once for a routing, send the mix, count; keep it up for the asserts."""
    topo = ScaleOut(routing, home=home, decision_wait="1s").up(timeout=60)
    try:
        sent = send_split_traces(topo.endpoint, DEFAULT_COUNTS)
        outcome = count_stored(topo.client, sent, routing, not_before=3.5)
        accepted = {g: collector_metric(topo.metrics_url(g), ACCEPTED) for g in GATEWAYS}
        refused = {g: collector_metric(topo.metrics_url(g), REFUSED) for g in GATEWAYS}
    finally:
        topo.down()
    # Under gateway.yaml's own 400 MiB limit, this small mix is never refused.
    assert sum(refused.values()) == 0, refused
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


@pytest.fixture(scope="module")
def overloaded(collector_bin):
    return overload()


def test_a_gateway_past_its_memory_limit_refuses_spans(overloaded):
    """memory_limiter says no while the burst is held for the decision wait."""
    assert sum(overloaded.refused.values()) > 0, overloaded.report()


def test_the_agent_retries_so_nothing_is_lost_once_the_load_drops(overloaded):
    """Spans in = spans accepted = spans sent on = spans stored, though thousands were refused once."""
    report = overloaded.report()
    assert overloaded.agent_accepted == overloaded.spans_sent, report
    assert overloaded.agent_retries > 0, report
    assert overloaded.agent_failed == 0, report
    # Every refused span came back: the gateways accepted exactly what was sent, no more, no less.
    assert sum(overloaded.accepted.values()) == overloaded.spans_sent, report
    assert sum(overloaded.exported.values()) == overloaded.spans_sent, report
    assert overloaded.lost_traces == 0 and overloaded.outcome.partial_total == 0, report


# --- the demo through the topology: `tracequest up --topology scale-out` -----------

@pytest.fixture(scope="module")
def scale_out_lab(collector_bin, jaeger_bin, tmp_path_factory):
    lab = Lab(LabSettings(backend="collector", topology="scale-out", ports=Ports.free()),
              home=tmp_path_factory.mktemp("scale-out-lab"))
    lab.up(log=lambda *_: None)
    yield lab
    lab.down(log=lambda *_: None)


def test_the_lab_runs_the_demo_through_an_agent_and_two_gateways(scale_out_lab):
    lab = scale_out_lab
    status = lab.status()
    assert {"jaeger", "agent", *GATEWAYS} <= set(status), status
    assert all(info["healthy"] for info in status.values()), status
    # Recorded, so a later `tracequest status` or `down` finds the gateways.
    assert Lab.from_state(lab.home).settings.gateway_ports == lab.settings.gateway_ports


def test_each_demo_trace_is_stored_whole_by_one_gateway(scale_out_lab):
    """Every /dispatch lasts over 500 ms, so the gateways keep it: whole, and all on one gateway."""
    lab = scale_out_lab
    for _ in range(4):
        assert requests.get(f"{lab.frontend_url}/dispatch", params={"customer": "123"},
                            timeout=30).status_code == 200
    client = QueryClient(lab.query_url)

    def stored() -> tuple:
        return tuple(sorted((t.trace_id, len(t)) for t in client.find_traces("frontend", lookback_s=600)))

    # The gateways decide 5 s after a trace's first span (gateway.yaml's decision wait).
    assert len(procs.settled(stored, not_before=6, timeout=60)) == 4
    traces = client.find_traces("frontend", lookback_s=600)
    for trace in traces:
        assert len(trace.roots) == 1 and not trace.orphans, trace
    accepted = [collector_metric(f"http://127.0.0.1:{ports[2]}/metrics", ACCEPTED)
                for ports in lab.settings.gateway_ports.values()]
    sizes = [len(t) for t in traces]
    assert sum(accepted) == sum(sizes), (accepted, sizes)
    # Each gateway holds a set of whole traces: some subset of the sizes adds up to its count.
    subsets = (c for r in range(len(sizes) + 1) for c in itertools.combinations(sizes, r))
    assert any(sum(c) == accepted[0] for c in subsets), (accepted, sizes)
