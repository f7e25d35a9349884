"""The check harness: run the learner's code for real and read the traces it sends.

A check never mocks OpenTelemetry. It starts an embedded backend in its own
process, starts the learner's programs as subprocesses on free ports with their
OTLP exporter pointed at that backend, sends them requests, stops them with
SIGTERM (so the SDK flushes), and hands the spans back as ``Trace`` objects.
Nothing here needs Docker or a running lab, and nothing collides with one.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tracequest.backend.server import Backend, start_backend
from tracequest.backend.store import SpanStore
from tracequest.expect.failure import QuestFailure
from tracequest.host import procs
from tracequest.host.ports import HOST, free_port
from tracequest.quests.relay import Relay
from tracequest.traces.model import Trace

LAUNCHER = Path(__file__).with_name("launcher.py")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 15.0
TAIL_LINES = 15
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colours in a program's output


def all_traces(store: SpanStore) -> list[Trace]:
    """Every trace the store holds, newest first."""
    return store.traces()


def child_env(backend: Backend, port: int, extra: dict | None = None) -> dict:
    """The environment of a learner program: the shell's, minus any OTEL_* it set.

    The learner's own OTEL_* settings (or a running lab's) must not leak in:
    the check decides where spans go, and the code decides everything else.
    """
    return procs.environment({
        "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_grpc_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        # Export every 100 ms, so a check rarely waits on the batch processor.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(extra or {}),
    }, scrub=True)


@dataclass(eq=False)
class LearnerApp:
    """One of the learner's programs, started as ``python <script>`` on a free port."""

    name: str
    script: Path
    port: int
    env: dict
    log_path: Path
    process: procs.Child | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def shown_path(self) -> str:
        """The script as the learner knows it: labs/04-propagation/frontend.py."""
        return f"{self.script.parent.parent.name}/{self.script.parent.name}/{self.script.name}"

    def start(self) -> None:
        self.process = procs.start(self.name, [sys.executable, str(LAUNCHER), str(self.script)],
                                   self.log_path, env=self.env, cwd=self.script.parent)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the program listens on its port, or explain why it never did."""
        try:
            if self.process.wait_ready(lambda: procs.listens(HOST, self.port), timeout):
                return
        except procs.ProcessExited:
            raise self.crashed(f"{self.name} to start and listen on port {self.port}") from None
        raise QuestFailure(
            f"{self.name} ({self.shown_path}) to listen on port {self.port}",
            f"it was still not listening after {timeout:.0f} seconds.",
            "the check passes the port in the PORT environment variable: "
            "app.run(host='127.0.0.1', port=int(os.environ['PORT'])).",
            self.tail(),
        )

    def crashed(self, expected: str) -> QuestFailure:
        code = self.process.exit_code()
        return QuestFailure(
            expected,
            f"{self.shown_path} exited with code {code}. Its last lines of output are below.",
            "run it yourself (python " + self.script.name + ") and fix the first error it prints.",
            self.tail(),
        )

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET from the program; a dead or silent program becomes a QuestFailure."""
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        try:
            return requests.get(self.url + path, **kwargs)
        except requests.RequestException as exc:
            if not self.process.is_running():
                raise self.crashed(f"{self.name} to answer GET {path}") from None
            raise QuestFailure(
                f"{self.name} to answer GET {path}",
                f"the request failed: {exc.__class__.__name__}.",
                "run the service yourself and open that URL; the output below may say more.",
                self.tail(),
            ) from None

    def terminate(self) -> None:
        if self.process:
            self.process.terminate()

    def wait_stopped(self, timeout: float = STOP_TIMEOUT) -> bool:
        """True if it exited by itself; otherwise it is killed (and its spans may be lost)."""
        return self.process is None or self.process.wait_stopped(timeout)

    def tail(self, lines: int = TAIL_LINES) -> str:
        text = self.process.tail(lines) if self.process else []
        shown = [ANSI.sub("", line) for line in text] or ["(no output)"]
        return f"last lines of {self.script.name}'s output:\n" + "\n".join("  " + line for line in shown)


class QuestRun:
    """One check's world: a backend, the learner's programs, relays, and the spans."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.apps: list[LearnerApp] = []
        self.relays: list[Relay] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="tracequest-check-")
        self.backend = start_backend(":memory:", grpc_port=0, http_port=0, query_port=0)
        self._stopped = False

    def __enter__(self) -> QuestRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def app(self, script: str, name: str | None = None, env: dict | None = None) -> LearnerApp:
        """Declare a program to run; its port is chosen now so others can be told it."""
        path = self.folder / script
        if not path.is_file():
            raise QuestFailure(
                f"your code at {self.folder}/{script}",
                "there is no such file.",
                f"the check reads {self.folder}; if you moved or renamed the file, put it back.",
            )
        port = free_port()
        name = name or path.stem
        app = LearnerApp(name, path, port, child_env(self.backend, port, env),
                         Path(self._tmp.name) / f"{name}.log")
        self.apps.append(app)
        return app

    def relay(self, target: LearnerApp) -> Relay:
        """A relay in front of ``target``; give its url to the caller instead of target's."""
        relay = Relay(target.port).start()
        self.relays.append(relay)
        return relay

    def start(self) -> None:
        """Start every declared program at once, then wait until each one listens."""
        for app in self.apps:
            if app.process is None:
                app.start()
        for app in self.apps:
            app.wait_ready()

    def wait_for_spans(self, count: int, timeout: float = 5.0) -> int:
        """Wait until the backend holds ``count`` spans, for work that ends after the response.

        Background work (a queue worker) may still be running when a request
        returns; stopping the program then would cut it off. Returns the count
        reached, which may be lower: the check decides what that means.
        """
        procs.until(lambda: self.backend.store.span_count() >= count, timeout)
        return self.backend.store.span_count()

    def stop(self) -> None:
        """SIGTERM every program together, so each flushes its spans before exiting."""
        if self._stopped:
            return
        self._stopped = True
        for app in self.apps:
            app.terminate()
        stubborn = [app for app in self.apps if not app.wait_stopped()]
        if stubborn:
            app = stubborn[0]
            raise QuestFailure(
                f"{app.name} to stop within {STOP_TIMEOUT:.0f} s of SIGTERM, flushing its spans",
                "it kept running and had to be killed, so its last spans may be lost.",
                "a non-daemon thread can keep Python alive: start background threads with daemon=True.",
                app.tail(),
            )

    def traces(self) -> list[Trace]:
        """Stop the programs (flushing their spans), then read every trace, newest first."""
        self.stop()
        return all_traces(self.backend.store)

    def close(self) -> None:
        try:
            self.stop()
        except QuestFailure:
            pass
        for relay in self.relays:
            relay.stop()
        self.backend.stop()
        self._tmp.cleanup()
