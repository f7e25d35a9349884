"""The collector quests' tools: a learner's collector.yaml, read, validated and run for real.

Quests 06b and 07 judge a pipeline, not a program. Their checks

- validate the file with the real binary (``jaeger validate``), so a learner
  sees the collector's own words for what it cannot load;
- read the file's trace pipeline (which processors, in which order) to judge
  its shape and to pick the right hint when the traces disappoint;
- run it in front of the real Jaeger on free ports (a :class:`~tracequest.lab.Lab`
  with no demo services), send it spans, and read back from Jaeger what survived.

The designed mix of traces and the count of what was kept live here too, so the
tail-sampling check and the project's own tests measure the same thing.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..binaries import find_jaeger, jaeger_missing_reason
from ..client import QueryClient
from ..lab import Lab, LabError
from ..model import Trace
from ..ports import HOST, Ports
from ..timefmt import parse_go_duration
from .failure import QuestFailure

START_TIMEOUT = 20.0
VALIDATE_TIMEOUT = 30.0
LOG_LINES = 12
_ENV_REFERENCE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def require_jaeger() -> Path:
    """The Jaeger binary (it runs collector pipelines too), or a failure saying how to build it."""
    path = find_jaeger()
    if path is None:
        raise QuestFailure(
            "the real Jaeger binary: this check runs your collector.yaml in it, in front of Jaeger",
            jaeger_missing_reason(),
            "build it once with `make backends` (it needs Go, and takes a few minutes the "
            "first time); the check finds it by itself afterwards.")
    return path


def kind_of(component: str) -> str:
    """A component's type without its name: 'attributes/pii' -> 'attributes'."""
    return component.split("/", 1)[0]


@dataclass(frozen=True)
class Pipeline:
    """One pipeline of ``service.pipelines``, by component name."""

    name: str
    receivers: list[str]
    processors: list[str]
    exporters: list[str]

    def processors_of_kind(self, kind: str) -> list[str]:
        return [p for p in self.processors if kind_of(p) == kind]

    def shown(self) -> str:
        """'processors: [memory_limiter, batch]', as the learner wrote it."""
        return f"processors: [{', '.join(self.processors)}]"


class CollectorConfig:
    """A collector.yaml as data: the components it defines and its trace pipelines.

    ``${env:NAME:-default}`` references stay as written; :meth:`resolve` fills
    them in from an environment, as the collector itself would.
    """

    def __init__(self, path: Path, data: dict):
        self.path = Path(path)
        self.data = data

    @classmethod
    def read(cls, path: Path) -> CollectorConfig:
        """Parse the file; call after :meth:`CollectorRun.validate`, which explains bad YAML."""
        data = yaml.safe_load(Path(path).read_text())
        return cls(path, data if isinstance(data, dict) else {})

    def section(self, name: str) -> dict:
        """``receivers``, ``processors``, ``exporters`` ...: component name -> its settings."""
        found = self.data.get(name)
        return {key: value or {} for key, value in found.items()} if isinstance(found, dict) else {}

    def defined(self, section: str, kind: str) -> dict[str, dict]:
        """The components of one type a section defines: every ``attributes/...`` processor."""
        return {name: body for name, body in self.section(section).items() if kind_of(name) == kind}

    def trace_pipelines(self) -> list[Pipeline]:
        pipelines = (self.data.get("service") or {}).get("pipelines") or {}
        return [Pipeline(name, list(body.get("receivers") or []), list(body.get("processors") or []),
                         list(body.get("exporters") or []))
                for name, body in pipelines.items()
                if kind_of(name) == "traces" and isinstance(body, dict)]

    def traces_pipeline(self) -> Pipeline:
        """The one traces pipeline a quest's file has; a failure if there are more or none."""
        pipelines = self.trace_pipelines()
        if len(pipelines) != 1:
            names = ", ".join(p.name for p in pipelines) or "none"
            raise QuestFailure("one traces pipeline under service.pipelines, as in the starter",
                               f"{len(pipelines)} pipelines for traces: {names}.",
                               "keep the single `traces` pipeline of the starter and list your "
                               "processors and exporters in it.")
        return pipelines[0]

    def duration_s(self, section: str, name: str, key: str, env: Mapping[str, str],
                   default: float) -> float:
        """A component's duration setting in seconds ('${env:X:-5s}' -> 5.0), or ``default``."""
        written = self.section(section).get(name, {}).get(key)
        if written is None:
            return default
        try:
            return parse_go_duration(self.resolve(written, env)) / 1e9
        except ValueError:
            return default

    @staticmethod
    def resolve(value, env: Mapping[str, str]) -> str:
        """A setting with its ``${env:NAME:-default}`` references filled in from ``env``."""
        def one(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            return env.get(name) or (default if default is not None else "")

        return _ENV_REFERENCE.sub(one, str(value))


class CollectorRun:
    """A learner's collector.yaml between OTLP senders and the real Jaeger, on free ports.

    Use it as a context manager: inside, :meth:`validate` the file, judge its
    shape, then :meth:`start` Jaeger and the collector; leaving stops both and
    removes their logs. The collector reads the same ``TQ_*`` variables as the
    configs in ``compose/collector/``; ``env`` adds or overrides some (a check
    sets ``TQ_TAIL_DECISION_WAIT=1s``).
    """

    def __init__(self, config: Path, env: Mapping[str, str] | None = None):
        self.config = Path(config)
        self.extra_env = dict(env or {})
        if not self.config.is_file():
            raise QuestFailure(f"your collector config at {self.config}", "there is no such file.",
                               f"the check reads {self.config}; if you moved or renamed it, put it back.")
        self._home = tempfile.TemporaryDirectory(prefix="tracequest-collector-")
        self.lab = Lab(home=self._home.name, ports=Ports.free(), backend="collector",
                       collector_config=str(self.config), services=())
        self._started = False

    @property
    def shown_path(self) -> str:
        """The file as the learner knows it: labs/07-collector/collector.yaml."""
        return f"{self.config.parent.parent.name}/{self.config.parent.name}/{self.config.name}"

    @property
    def otlp_endpoint(self) -> str:
        """Where senders reach the collector: its OTLP/gRPC port."""
        return f"http://{HOST}:{self.lab.ports.otlp_grpc}"

    @property
    def client(self) -> QueryClient:
        """Jaeger's query API, where what the collector exported ends up."""
        return QueryClient(self.lab.query_url)

    def environment(self) -> dict[str, str]:
        """The variables the collector runs with: the lab's ``TQ_*`` ports plus ``env``."""
        require_jaeger()  # the lab names the binary in its command line
        collector = next(p for p in self.lab.processes() if p.name == "collector")
        return {**collector.env, **self.extra_env}

    def validate(self) -> None:
        """Load the file in the real binary without running it; its error becomes the failure."""
        binary = require_jaeger()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(self.environment())
        try:
            done = subprocess.run([str(binary), "validate", "--config", str(self.config)], env=env,
                                  capture_output=True, text=True, timeout=VALIDATE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise QuestFailure(f"{self.shown_path} to load in the collector",
                               f"`jaeger validate` did not finish within {VALIDATE_TIMEOUT:.0f} s.",
                               "this looks like a problem with the machine, not your file; "
                               "tell your instructor.") from None
        if done.returncode != 0:
            raise QuestFailure(
                f"{self.shown_path} to load in the collector",
                f"the collector refused it: {validation_error(done.stdout + done.stderr)}",
                "fix what that message names; the starter file shows the shapes that load. To "
                "see the message yourself: $(python -m tracequest.binaries path) validate "
                f"--config {self.shown_path}")

    def __enter__(self) -> CollectorRun:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._home.cleanup()

    def start(self) -> None:
        """Start Jaeger, then the collector with the learner's file; a failure explains itself."""
        require_jaeger()
        self._check_receiver_addresses()
        self._started = True
        try:
            with _environ(self.extra_env):
                self.lab.up(timeout=START_TIMEOUT, log=lambda *_: None)
        except LabError as exc:
            self.stop()
            first, _, rest = str(exc).partition("\n")
            if not first.startswith("collector"):
                raise QuestFailure("Jaeger to start, to receive what your collector exports",
                                   first, "this is not about your file; tell your instructor.",
                                   details=rest) from None
            expected = f"the collector to start with {self.shown_path} and listen on its OTLP ports"
            if "exited" in first:
                raise QuestFailure(
                    expected, f"it loaded the file, then stopped: {validation_error(rest)}",
                    "the message names the component and the setting it could not use; "
                    "compare them with the collector's documentation for that component.",
                    details=self.log_tail()) from None
            raise QuestFailure(
                expected, f"it was still not answering on port {self.lab.ports.otlp_http} "
                f"after {START_TIMEOUT:.0f} s.",
                "keep the receivers' endpoints as the starter has them "
                "(${env:TQ_COLLECTOR_HOST...}): the check places the collector on free ports "
                "through those variables.", details=self.log_tail()) from None

    def _check_receiver_addresses(self) -> None:
        """The OTLP receiver must listen where the check sends: on the ports it chose."""
        config, env = CollectorConfig.read(self.config), self.environment()
        for protocol, port in (("grpc", self.lab.ports.otlp_grpc), ("http", self.lab.ports.otlp_http)):
            wanted = f"{HOST}:{port}"
            found = []
            for name, receiver in config.defined("receivers", "otlp").items():
                settings = (receiver.get("protocols") or {}).get(protocol) or {}
                endpoint = settings.get("endpoint")
                found.append(f"{name} {protocol} endpoint {endpoint!r}" if endpoint else
                             f"{name} has no {protocol} endpoint")
                if endpoint and config.resolve(endpoint, env) == wanted:
                    break
            else:
                raise QuestFailure(
                    f"an otlp receiver listening for OTLP/{protocol} where the check sends, "
                    f"at {wanted}",
                    ("; ".join(found) or "there is no otlp receiver") + ".",
                    "keep the receivers as the starter has them: endpoint: "
                    "${env:TQ_COLLECTOR_HOST:-127.0.0.1}:${env:TQ_COLLECTOR_OTLP_"
                    f"{protocol.upper()}_PORT:-{4317 if protocol == 'grpc' else 4318}}}. "
                    "The check chooses free ports and passes them in those variables.")

    def stop(self) -> None:
        """Stop the collector, then Jaeger (the lab stops them in that order)."""
        if self._started:
            self._started = False
            self.lab.down(log=lambda *_: None)

    def log_tail(self, lines: int = LOG_LINES) -> str:
        """The collector's last lines of output, shortened, for a failure's details."""
        path = self.lab.log_dir / "collector.log"
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            text = []
        shown: list[str] = []
        for line in text:
            if line.startswith("\t") or " " not in line.strip():
                continue  # a Go stack trace: frames and file positions
            short = compact_log_line(_GO_LOG_STAMP.sub("Error: ", line))
            if short and short not in shown[-2:]:
                shown.append(short)
        shown = shown[-lines:] or ["(no output)"]
        return "last lines of the collector's output:\n" + "\n".join("  " + line for line in shown)


_NOISE = ("resource", "grpc_log", "otelcol.component.kind", "otelcol.signal")


def compact_log_line(line: str, width: int = 240) -> str:
    """A collector log line as a learner wants it: time, level, component, message, details.

    The collector logs ``time<TAB>level<TAB>[source<TAB>]message[<TAB>{json}]``,
    and the JSON repeats the collector's own resource on every line; that goes.
    """
    if "application version:" in line:
        return ""
    parts = line.rstrip().split("\t")
    if len(parts) < 3:
        return line.strip()[:width]
    stamp, level, rest = parts[0], parts[1], parts[2:]
    fields = {}
    if len(rest) > 1 and rest[-1].startswith("{"):
        try:
            fields = json.loads(rest.pop())
        except ValueError:
            pass
    message = rest[-1]
    fields = {k: v for k, v in fields.items() if k not in _NOISE} if isinstance(fields, dict) else {}
    component = fields.pop("otelcol.component.id", "")
    details = ", ".join(f"{key}={value}" for key, value in fields.items())
    text = f"{stamp[11:19]} {level} {component + ': ' if component else ''}{message}"
    text += f" ({details})" if details else ""
    return text if len(text) <= width else text[:width - 3] + "..."


def validation_error(output: str) -> str:
    """What the collector's output says is wrong with a config, in one line.

    The message starts at ``Error:`` and may continue over several lines (a
    chain of causes, most specific last) until Go's logger repeats it.
    """
    lines = [line.strip() for line in output.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("Error:")), None)
    if start is None:
        said = [line for line in lines if line and "application version:" not in line]
        return said[-1] if said else "(it printed nothing)"
    chain = [lines[start][len("Error:"):].strip()]
    for line in lines[start + 1:]:
        if _GO_LOG_STAMP.match(line) or line.startswith("Error:"):
            break
        if line:
            chain.append(line)
    text = " ".join(chain).replace(" decoding failed due to the following error(s):", "")
    return text.replace("decoding failed due to the following error(s): ", "")


_GO_LOG_STAMP = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} ")


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables in this process for a moment: the lab's processes inherit them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- the tail-sampling mix ---------------------------------------------------

MIX_SERVICE = "sampling-mix"
MIX_ATTRIBUTE = "mix.kind"
SLOW_MS = 800     # how long a slow trace lasts
QUICK_MS = 10     # how long every other trace lasts


def send_mix(endpoint: str, counts: Mapping[str, int], service: str = MIX_SERVICE) -> None:
    """Send a designed mix of two-span traces to an OTLP/gRPC endpoint, and flush.

    ``counts`` says how many traces of each kind: ``error`` (the child span ends
    with status ERROR), ``slow`` (the trace lasts SLOW_MS) and ``normal`` (neither).
    Every trace is QUICK_MS long unless slow, and its root span carries its kind
    in ``mix.kind``, so what survives can be counted per kind. The kinds are
    shuffled, as real traffic would be.
    """
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    unknown = set(counts) - {"error", "slow", "normal"}
    if unknown:
        raise ValueError(f"unknown kinds of trace {sorted(unknown)}; use error, slow and normal")
    total = sum(counts.values())
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=2 * total + 64,
                                                   max_export_batch_size=512, schedule_delay_millis=100))
    tracer = provider.get_tracer("tracequest.mix")
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    random.shuffle(kinds)
    for kind in kinds:
        lasts_ms = SLOW_MS if kind == "slow" else QUICK_MS
        start = time.time_ns() - lasts_ms * 1_000_000
        root = tracer.start_span("GET /mix", kind=SpanKind.SERVER, start_time=start,
                                 attributes={MIX_ATTRIBUTE: kind})
        child = tracer.start_span("work", context=set_span_in_context(root), start_time=start + 1000)
        if kind == "error":
            child.set_status(Status(StatusCode.ERROR, "a designed failure"))
        child.end()
        root.end()
    provider.shutdown()


def kept_by_kind(client: QueryClient, service: str = MIX_SERVICE, not_before: float = 3.0,
                 settle: float = 2.0, timeout: float = 30.0) -> Counter:
    """How many traces of each kind Jaeger holds, once that count has stopped changing.

    A tail sampler exports a trace only after its decision wait, and a batch
    processor holds it a little longer, so an empty Jaeger means nothing until
    ``not_before`` seconds have passed (the caller knows the config's delays).
    """
    def read() -> Counter:
        traces = client.find_traces(service, lookback_s=600, limit=100_000)
        return Counter(_kind_of(trace) for trace in traces)

    return settled(read, not_before=not_before, settle=settle, timeout=timeout)


def _kind_of(trace: Trace) -> str:
    for span in trace:
        if MIX_ATTRIBUTE in span.attributes:
            return str(span.attributes[MIX_ATTRIBUTE])
    return "unknown"


def settled(read: Callable[[], object], not_before: float = 0.0, settle: float = 2.0,
            timeout: float = 30.0, patience: float = 5.0):
    """Call ``read`` until its answer stays the same for ``settle`` seconds; return that answer.

    It never returns before ``not_before`` seconds. While the answer is still
    empty it waits ``patience`` seconds longer, as a slow machine may simply
    not have delivered anything yet. After ``timeout`` seconds it returns the
    last answer, settled or not.
    """
    started = time.monotonic()
    last, since = None, started
    while True:
        answer = read()
        now = time.monotonic()
        if answer != last:
            last, since = answer, now
        waited = now - started
        at_least = not_before + (0 if answer else patience)
        if (waited >= at_least and now - since >= settle) or waited >= timeout:
            return answer
        time.sleep(0.25)
