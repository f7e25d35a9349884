"""`tracequest doctor --run CMD`: run a learner's program briefly against a private backend.

The program gets the learner's environment with only the exporter's
destination changed (a private embedded backend on free ports), a batch delay
short enough that spans arrive while it runs, and the process resource
detector, so each span says which process made it. Then the traces tell what
went wrong: nothing at all, unknown_service, a request split over several
traces, spans that arrive only at exit, forked processes that sent nothing.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

from tracequest.backend.server import start_backend
from tracequest.host import procs
from tracequest.pitfalls.findings import Finding, bad, good
from tracequest.traces.model import Trace

TOPIC = "run"
START_TIMEOUT = 20.0
_REDIRECTED = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")


def run_env(env: Mapping[str, str], grpc_endpoint: str) -> dict:
    """The learner's environment, exporting to ``grpc_endpoint`` with a short batch delay."""
    changed = {k: v for k, v in env.items() if k not in _REDIRECTED}
    changed.update({"OTEL_EXPORTER_OTLP_ENDPOINT": grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                    "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel,process",
                    "PYTHONUNBUFFERED": "1"})
    return changed


class _Family(threading.Thread):
    """Every process the command starts, noted while it runs (forked workers can be short-lived)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.seen, self.done = pid, {}, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                for child in psutil.Process(self.pid).children(recursive=True):
                    self.seen.setdefault(child.pid, " ".join(child.cmdline())[:80])
            except psutil.Error:
                pass
            self.done.wait(0.01)


def watch(command: list[str], urls: list[str], env: Mapping[str, str] | None = None,
          seconds: float = 10.0) -> list[Finding]:
    """Run ``command``, GET each of ``urls``, stop it with SIGTERM; findings from its traces."""
    shown = shlex.join(command)
    with start_backend(":memory:", grpc_port=0, http_port=0, query_port=0) as backend, \
            tempfile.TemporaryDirectory(prefix="tracequest-doctor-") as tmp:
        child = procs.start("program", command, Path(tmp) / "output.log",
                            env=run_env(os.environ if env is None else env, backend.otlp_grpc_endpoint))
        family = _Family(child.pid)
        family.start()
        answered = _drive(child, urls) if urls else procs.until(lambda: not child.is_running(), seconds)
        count = backend.store.span_count
        during = procs.settled(count, settle=0.6, patience=0.5, timeout=5) if urls else count()
        child.stop()
        family.done.set()
        after = procs.settled(count, settle=0.3, patience=0.2, timeout=5)
        traces = backend.store.traces()
        output = child.tail(5)
    if urls and answered is not True:
        return [bad(TOPIC, "no-answer", f"`{shown}` {answered}", "run it yourself and open the URL; "
                    "its last output: " + " | ".join(output))]
    return _judge(shown, traces, len(urls) or 1, during, after, family, bool(urls))


def _drive(child: procs.Child, urls: list[str]):
    """Wait until the first URL's port listens, then GET each; True, or what went wrong."""
    parts = urlsplit(urls[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        if not child.wait_ready(lambda: procs.listens(host, port), START_TIMEOUT):
            return f"did not listen on {host}:{port} within {START_TIMEOUT:.0f} s"
    except procs.ProcessExited:
        return f"exited before it listened on {host}:{port}"
    for url in urls:
        try:
            requests.get(url, timeout=15)
        except requests.RequestException as exc:
            return f"did not answer {url} ({exc.__class__.__name__})"
    return True


def _judge(shown: str, traces: list[Trace], expected: int, during: int, after: int, family: _Family,
           served: bool) -> list[Finding]:
    spans = [span for trace in traces for span in trace]
    if not spans:
        return [bad(TOPIC, "no-spans", f"`{shown}` sent no spans at all",
                    "load the instrumentation (run it under opentelemetry-instrument, or set a global "
                    "TracerProvider before the app starts), and let the SDK read the endpoint from "
                    "OTEL_EXPORTER_OTLP_ENDPOINT rather than fixing one in code")]
    findings = []
    unknown = sorted({s.service for s in spans if s.service.startswith("unknown_service")})
    if unknown:
        findings.append(bad(TOPIC, "unknown-service", f"spans arrived as {', '.join(unknown)}",
                            "set OTEL_SERVICE_NAME (or service.name in the Resource)"))
    orphans = [s for t in traces for s in t.orphans]
    if len(traces) > expected or orphans:
        parts = []
        if len(traces) > expected:
            parts.append(f"{len(traces)} traces where {expected} {'was' if expected == 1 else 'were'} expected")
        if orphans:
            parts.append(f"{len(orphans)} span(s) whose parent never arrived")
        what = ", ".join(parts)
        roots = sorted({t.root.name for t in traces if t.roots})
        findings.append(bad(TOPIC, "context-lost", f"{what} (roots: {', '.join(roots)})",
                            "carry the context: copy it into threads and executors "
                            "(contextvars.copy_context().run), inject() it into outgoing calls"))
    if served and during == 0 and after > 0:
        findings.append(bad(TOPIC, "spans-only-at-exit",
                            f"no span arrived while it ran; all {after} came when it stopped",
                            "spans wait for the final flush, and a killed process loses them: use the "
                            "BatchSpanProcessor's default schedule and call force_flush() after short jobs"))
    # A job's forked processes all have work to do (a server's idle worker may not): judge jobs only.
    exporting = {s.resource.get("process.pid") for s in spans}
    silent = sorted(p for p, cmd in family.seen.items() if p not in exporting and "python" in cmd)
    if not served and silent:
        findings.append(bad(TOPIC, "silent-workers",
                            f"{len(silent)} forked process(es) (pid {', '.join(map(str, silent))}) sent no "
                            "spans while the others did",
                            "flush before a worker process ends: provider.force_flush()"))
    if not findings:
        findings.append(good(TOPIC, f"`{shown}`: {len(spans)} spans in {len(traces)} trace(s), all named, "
                                    "none orphaned"))
    return findings
