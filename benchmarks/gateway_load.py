"""What a gateway costs at a given span rate: each gateway's CPU and memory in the scale-out topology.

The topology is tracequest.lab.scale_out's, all real processes: an agent
(compose/collector/agent-trace-id.yaml) routing by trace id to two gateways
(compose/collector/gateway.yaml: memory_limiter, tail sampling with the
default 5 s decision wait, batch) in front of Jaeger. For each rate it is
started afresh, so one rate's heap does not carry into the next. The stream is
collector_cost.py's (prepared before the clock starts, OTLP/HTTP protobuf, 100
spans a request, 10 spans a trace), posted to the agent. After a short warm-up,
each process's CPU time (user + system) and resident memory (sampled every
0.5 s) are measured over the window. At the end the gateways' own metrics must
show every span accepted, or the numbers would flatter a gateway that refused
work.

Tail sampling holds every trace for its decision wait, so a gateway's memory
grows with (spans/s it receives) x (decision wait) x (bytes a span takes in
memory): the figure to extrapolate from. Last, the gateways are pushed past a
small memory limit (tracequest.lab.scale_out.overload): what memory_limiter
refused, what the agent retried, and what Jaeger stored in the end. Run:
`python benchmarks/gateway_load.py` (about two and a half minutes).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector_cost import (  # noqa: E402  (a sibling script, not a package)
    PER_REQUEST,
    accepted_spans,
    prepared_requests,
    send_at_rate,
)

from tracequest.host.procs import MemorySampler  # noqa: E402
from tracequest.programs.collector import ensure_collector  # noqa: E402
from tracequest.programs.jaeger import ensure_jaeger  # noqa: E402
from tracequest.lab.scale_out import overload  # noqa: E402
from tracequest.lab.topology import GATEWAYS, ScaleOut  # noqa: E402

RATES = (500, 1000, 2000, 4000)   # spans per second into the agent (split over two gateways)
SECONDS = 12                      # measured window per rate
WARMUP = 2                        # seconds at the same rate before measuring
DECISION_WAIT = "5s"              # gateway.yaml's default


def measure(rate: int, rng: random.Random) -> dict[str, dict]:
    """One rate: start the topology, warm up, measure agent and gateways, stop."""
    warmup = prepared_requests(rate * WARMUP // PER_REQUEST, rng)
    bodies = prepared_requests(rate * SECONDS // PER_REQUEST, rng)
    with ScaleOut("trace-id", decision_wait=DECISION_WAIT) as topo:
        url = f"http://127.0.0.1:{topo.agent_ports.otlp_http}/v1/traces"
        send_at_rate(url, warmup, rate)
        names = ["agent", *GATEWAYS]
        processes = {n: psutil.Process(topo.children[n].pid) for n in names}
        samplers = {n: MemorySampler(topo.children[n].pid) for n in names}
        before = {n: p.cpu_times() for n, p in processes.items()}
        for sampler in samplers.values():
            sampler.start()
        elapsed, failed = send_at_rate(url, bodies, rate)
        after = {n: p.cpu_times() for n, p in processes.items()}
        rss = {n: s.stop() for n, s in samplers.items()}
        sent = (len(warmup) + len(bodies)) * PER_REQUEST
        # The agent batches and the gateways' queues drain within a second or two.
        time.sleep(2)
        accepted = {g: accepted_spans(topo.metrics_url(g)) for g in GATEWAYS}
        results = {}
        for n in names:
            cpu = (after[n].user - before[n].user) + (after[n].system - before[n].system)
            results[n] = {"cpu": 100 * cpu / elapsed, "rss_mean": sum(rss[n]) / len(rss[n]) / 2**20,
                          "rss_peak": max(rss[n]) / 2**20,
                          "spans": accepted.get(n, sent - failed * PER_REQUEST)}
        results["_"] = {"sent": sent, "accepted": sum(accepted.values()), "failed": failed,
                        "rate": len(bodies) * PER_REQUEST / elapsed}
        return results


def main() -> int:
    ensure_jaeger(log=lambda line: print(f"[jaeger build] {line}", file=sys.stderr))
    ensure_collector(log=lambda line: print(f"[collector build] {line}", file=sys.stderr))
    rng = random.Random(11)
    print(f"Scale-out topology (agent -> 2 gateways -> Jaeger), trace-id routing, decision wait "
          f"{DECISION_WAIT}; {SECONDS}s per rate after {WARMUP}s warm-up; {os.cpu_count()} CPUs")
    header = (f"{'spans/s in':>10} {'process':<10} {'spans recv':>10} {'CPU % core':>10} "
              f"{'RSS mean MiB':>12} {'RSS peak MiB':>12}")
    print(header)
    print("-" * len(header))
    short = []
    for rate in RATES:
        results = measure(rate, rng)
        total = results.pop("_")
        for name, r in results.items():
            print(f"{total['rate']:>10.0f} {name:<10} {r['spans']:>10.0f} {r['cpu']:>10.1f} "
                  f"{r['rss_mean']:>12.1f} {r['rss_peak']:>12.1f}")
        if total["accepted"] < total["sent"] or total["failed"]:
            short.append(f"{rate}/s: {total['accepted']:.0f} of {total['sent']} accepted")
    print("\nPast the memory limit (one burst, then nothing):")
    pushed = overload()
    print(pushed.report())
    if pushed.lost_traces:
        short.append(f"overload: {pushed.lost_traces} traces lost")
    if short:
        print("NOT every span reached a gateway (" + "; ".join(short) + "); the numbers understate the work")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
