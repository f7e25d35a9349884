"""A learner's collector.yaml as data, and the collector's own words about it.

Quests 06b, 07 and 09 judge a pipeline, not a program: their checks read the
file's pipelines (which processors, in which order; which exporters and
connectors join them) to judge their shape and to pick the right hint, and
shorten what the collector prints into something a learner can read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from tracequest.expect.failure import QuestFailure
from tracequest.traces.timefmt import parse_go_duration

_ENV_REFERENCE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# Collector 0.161 renamed these types; both spellings load, so a check accepts both
# and knows each by the name the quests' texts use.
RENAMED_KINDS = {"otlp_grpc": "otlp", "otlp_http": "otlphttp", "span_metrics": "spanmetrics",
                 "load_balancing": "loadbalancing"}


def kind_of(component: str) -> str:
    """A component's type without its name: 'attributes/pii' -> 'attributes', 'span_metrics' -> 'spanmetrics'."""
    kind = component.split("/", 1)[0]
    return RENAMED_KINDS.get(kind, kind)


@dataclass(frozen=True)
class Pipeline:
    """One pipeline of ``service.pipelines``, by component name."""

    name: str
    receivers: list[str]
    processors: list[str]
    exporters: list[str]

    def processors_of_kind(self, kind: str) -> list[str]:
        return [p for p in self.processors if kind_of(p) == kind]

    def receivers_of_kind(self, kind: str) -> list[str]:
        return [r for r in self.receivers if kind_of(r) == kind]

    def exporters_of_kind(self, kind: str) -> list[str]:
        return [e for e in self.exporters if kind_of(e) == kind]

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
        return self.pipelines("traces")

    def pipelines(self, signal: str) -> list[Pipeline]:
        """The pipelines of one signal (``traces``, ``metrics``, ``logs``), in file order."""
        pipelines = (self.data.get("service") or {}).get("pipelines") or {}
        return [Pipeline(name, list(body.get("receivers") or []), list(body.get("processors") or []),
                         list(body.get("exporters") or []))
                for name, body in pipelines.items()
                if kind_of(name) == signal and isinstance(body, dict)]

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


#: How a quest's config names Jaeger's OTLP/gRPC address, so the check can point it at its own Jaeger.
JAEGER_ENDPOINT = "${env:TQ_JAEGER_OTLP_ENDPOINT:-127.0.0.1:4327}"


def jaeger_exporter_fault(config: CollectorConfig, name: str) -> str | None:
    """What in exporter ``name``'s settings keeps it from the check's Jaeger; None if nothing does."""
    settings = config.section("exporters").get(name, {})
    endpoint = str(settings.get("endpoint") or "")
    if "TQ_JAEGER_OTLP_ENDPOINT" not in endpoint:
        return (f"{name} sends to {endpoint or 'no endpoint'}, but the check's Jaeger listens at the "
                f"address in TQ_JAEGER_OTLP_ENDPOINT: write endpoint: {JAEGER_ENDPOINT} under {name}.")
    if not (settings.get("tls") or {}).get("insecure"):
        return (f"{name} tries to speak TLS, and Jaeger's OTLP port here speaks plain gRPC: "
                f"write tls: insecure: true under {name}.")
    return None


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
        if GO_LOG_STAMP.match(line) or line.startswith("Error:"):
            break
        if line:
            chain.append(line)
    text = " ".join(chain).replace(" decoding failed due to the following error(s):", "")
    return text.replace("decoding failed due to the following error(s): ", "")


GO_LOG_STAMP = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} ")


