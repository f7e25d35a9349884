"""Every knob of the demo and the lab, once: ports, fix flags, failures, delays, storage.

flagd keeps all of a system's feature flags in one file; this is that file for
Trace Quest. Each knob has a flag name (``fix-db-query-delay``), an environment
twin (``TQ_FIX_DB_QUERY_DELAY``), a kind that says how text becomes a value, a
default, one line of help, the programs that read it, and the modules where
they read it (``read_at``). The services'
command lines (``config.py``), ``tracequest up``'s options, the mystery's
culprits, the lab's ports and the README's tables all come from ``KNOBS``, so
a name or a default changes in exactly one place.

A name that is not here is an error naming the nearest one that is, never
silently ignored: ``TQ_FIX_DB_QUERY_DELY=5ms`` stops a service instead of
leaving the database slow while the learner thinks it is fixed.

``python -m services.common.knobs`` prints the table as Markdown (the README's
"Knobs" section is that output, and a test keeps the two equal).
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Mapping

from services.common.durations import format_go_duration, parse_go_duration

HOST = "127.0.0.1"
SERVICES = ("frontend", "customer", "driver", "route", "assistant", "model")
# Who reads a knob: the four services, the embedded backend, the lab that starts
# them all, and the query client and notebooks ("client").
READERS = (*SERVICES, "backend", "lab", "client")
GROUPS = ("port", "connection", "fix", "failure", "delay", "price", "storage", "run")
KINDS = ("duration", "bool", "int", "count", "rate", "port", "url", "host", "seed", "price")

# The two shared places where ports are read (see Knob.read_at): every service
# takes its own port (and its host and seed) in app.py's start(); the lab and
# the embedded backend take every port from the Ports dataclass.
SERVICE_START = "services/common/app.py"
LAB_PORTS = "src/tracequest/host/ports.py"
_MODULE_PATH = re.compile(r"(services|src/tracequest)(/[a-z_][a-z0-9_]*)+\.py")

# TQ_* names that are legitimately not knobs: they configure the upstream Jaeger
# and Collector programs (compose/jaeger/config.yaml, compose/collector/*.yaml,
# set by lab.py and binaries.py) or switch on quest 03's mystery.
OTHER_TQ_ENV = {
    "TQ_MYSTERY": "quest 03's seed; the services read it (services/common/mystery.py)",
    "TQ_JAEGER_HOST": "interface real Jaeger listens on (compose/jaeger/config.yaml)",
    "TQ_JAEGER_QUERY_HTTP_PORT": "real Jaeger's query port (compose/jaeger/config.yaml)",
    "TQ_COLLECTOR_HOST": "interface the Collector listens on (compose/collector/*.yaml)",
    "TQ_COLLECTOR_OTLP_GRPC_PORT": "the Collector's OTLP/gRPC port (compose/collector/*.yaml)",
    "TQ_COLLECTOR_OTLP_HTTP_PORT": "the Collector's OTLP/HTTP port (compose/collector/*.yaml)",
    "TQ_JAEGER_OTLP_ENDPOINT": "where the Collector sends spans (compose/collector/*.yaml)",
    "TQ_TAIL_DECISION_WAIT": "tail sampling's decision wait (compose/collector/tail-sampling.yaml)",
    "TQ_ZIPKIN_ENDPOINT": "where the Collector sends spans for Zipkin (compose/collector/fan-out.yaml)",
    "TQ_GATEWAY_1_ENDPOINT": "the first gateway the scale-out agent sends to (compose/collector/agent-*.yaml)",
    "TQ_GATEWAY_2_ENDPOINT": "the second gateway the scale-out agent sends to (compose/collector/agent-*.yaml)",
    "TQ_GATEWAY_MEMORY_LIMIT_MIB": "a scale-out gateway's memory_limiter limit_mib (compose/collector/gateway.yaml)",
    "TQ_GATEWAY_MEMORY_SPIKE_MIB": "a scale-out gateway's memory_limiter spike_limit_mib (compose/collector/gateway.yaml)",
    "TQ_PROMETHEUS_URL": "the Prometheus Jaeger's Monitor reads span metrics from (compose/jaeger/config.yaml)",
    "TQ_JAEGER_BADGER_DIR": "where Badger keeps real Jaeger's spans (compose/jaeger/config-badger.yaml)",
    "TQ_ELASTICSEARCH_URL": "the Elasticsearch real Jaeger stores spans in (compose/jaeger/config-elasticsearch.yaml)",
    "TQ_CASSANDRA_ENDPOINT": "the Cassandra real Jaeger stores spans in (compose/jaeger/config-cassandra.yaml)",
}


class KnobError(ValueError):
    """A knob's value or name is wrong; the message is one line a learner can act on."""


class UnknownKnob(KnobError):
    """A name that is no knob; the message names the nearest known name."""

    def __init__(self, name: str, nearest: str | None):
        self.name, self.nearest = name, nearest
        hint = f"; did you mean {nearest}?" if nearest else ""
        super().__init__(f"unknown setting {name}{hint}")


# --- text -> value, and back, for each kind -----------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _parse_duration(text: str) -> float:
    try:
        return parse_go_duration(text) / 1e9
    except ValueError as error:
        raise KnobError(str(error)) from None


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise KnobError(f"{text!r} is not yes or no; use 1/true/yes/on or 0/false/no/off")


def _whole_number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _parse_int(text: str) -> int:
    number = _whole_number(text)
    if number is None:
        raise KnobError(f"{text!r} is not a whole number >= 0")
    return number


def _parse_count(text: str) -> int:
    number = _whole_number(text)
    if number is None or number < 1:
        raise KnobError(f"{text!r} is not a count (a whole number >= 1)")
    return number


def _parse_port(text: str) -> int:
    port = _whole_number(text)
    if port is None or port > 65535:
        raise KnobError(f"{text!r} is not a port number (0-65535)")
    return port


def _parse_rate(text: str) -> float:
    try:
        value = float(Fraction(text.strip()))  # 0.083 or 1/12
    except (ValueError, ZeroDivisionError):
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise KnobError(f"{text!r} is not a rate between 0 and 1, e.g. 0.083 or 1/12")
    return value


def _parse_url(text: str) -> str:
    text = text.strip()
    if not text.startswith(("http://", "https://")) or len(text.split("//", 1)[1]) == 0:
        raise KnobError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")  # so paths join cleanly


def _parse_host(text: str) -> str:
    if not text.strip():
        raise KnobError("the host must not be empty")
    return text.strip()


def _parse_seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise KnobError(f"{text!r} is not an integer seed") from None


def _parse_price(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        raise KnobError(f"{text!r} is not a price in US dollars (a number >= 0, e.g. 0.40)")
    return value


def _show_duration(seconds: float) -> str:
    return format_go_duration(round(seconds * 1e9))


def _show_rate(value: float) -> str:
    """The shortest spelling that reads back exactly: 0.5, or 1/12 rather than 0.08333…."""
    short = f"{value:.4g}"
    if float(short) == value:
        return short
    fraction = Fraction(value).limit_denominator(1000)
    if float(fraction) == value:
        return f"{fraction.numerator}/{fraction.denominator}"
    return repr(value)


_PARSE = {"duration": _parse_duration, "bool": _parse_bool, "int": _parse_int,
          "count": _parse_count, "rate": _parse_rate, "port": _parse_port,
          "url": _parse_url, "host": _parse_host, "seed": _parse_seed,
          "price": _parse_price}
_SHOW = {"duration": _show_duration, "bool": lambda value: "on" if value else "off",
         "rate": _show_rate, "price": lambda value: f"{value:g}"}


# --- the knob ----------------------------------------------------------------------

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class Knob:
    """One setting: its flag name, environment twin, kind, default, help, readers and read sites.

    ``read_at`` names, as paths from the repository's root, the modules where
    the knob's value is read. For a service that is the module implementing the
    knob when its code names the knob (``config.default("redis-timeout")`` in
    services/driver/redis.py); when that module takes the value under another
    name, it is the module that hands the value over (services/customer/server.py
    passes ``settings.fix_db_query_delay`` to ``Database(query_delay)``). For the
    library it is the module that takes the value from this table or from the
    environment. A module that reads a knob for several readers is named once, so
    most knobs have one: the ports have the two shared places above, and the
    customer, driver and route URLs are read by both of their callers.
    tests/test_knobs.py checks that each module names the knob in its code.
    """

    name: str  # the flag without dashes: "fix-db-query-delay"
    env: str  # the environment twin: "TQ_FIX_DB_QUERY_DELAY"
    kind: str  # one of KINDS: how text becomes a value
    default: object  # the parsed value; durations in seconds; None means unset
    help: str  # one line, without the default (--help adds it)
    readers: tuple[str, ...]  # programs that read it, from READERS
    group: str  # one of GROUPS
    read_at: tuple[str, ...]  # modules that read it: "services/customer/server.py"

    def __post_init__(self):
        # A malformed entry fails at import, in every test, not in a learner's shell.
        problems = []
        if not _NAME.fullmatch(self.name):
            problems.append("the name is not lower-case-with-dashes")
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.group not in GROUPS:
            problems.append(f"group {self.group!r} is not one of {', '.join(GROUPS)}")
        if not self.readers or not set(self.readers) <= set(READERS):
            problems.append(f"readers {self.readers!r} are not among {', '.join(READERS)}")
        if (not self.read_at or isinstance(self.read_at, str)
                or not all(isinstance(p, str) and _MODULE_PATH.fullmatch(p) for p in self.read_at)):
            problems.append(f"read_at {self.read_at!r} is not a tuple of module paths "
                            "such as 'services/customer/server.py'")
        if problems:
            raise KnobError(f"knob {self.name!r}: " + "; ".join(problems))

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        """The attribute argparse gives it: fix_db_query_delay."""
        return self.name.replace("-", "_")

    def parse(self, text: str):
        """Text as a person types it (flag or environment) → value; KnobError if malformed.

        An empty text unsets a knob whose default is unset (``TQ_SEED=``).
        """
        if self.default is None and not str(text).strip():
            return None
        return _PARSE[self.kind](str(text))

    def show(self, value) -> str:
        """A value as a person types it: "300ms", "3", "on", "1/12"; "" for unset."""
        if value is None:
            return ""
        return _SHOW.get(self.kind, str)(value)


def _knob(name, kind, default, help, readers, group, read_at, env=None):
    """A knob whose environment twin is TQ_ and its name in capitals, unless given.

    `read_at` is one module path or several.
    """
    return Knob(name, env or "TQ_" + name.upper().replace("-", "_"), kind, default, help,
                tuple(readers), group, (read_at,) if isinstance(read_at, str) else tuple(read_at))


def _port(name, default, help, readers=("lab",)):
    """A port: a service reads its own in SERVICE_START, the lab and the backend in LAB_PORTS."""
    read_at = (SERVICE_START, LAB_PORTS) if set(readers) & set(SERVICES) else LAB_PORTS
    return _knob(f"{name}-port", "port", default, help, readers, "port", read_at)


def _service_port(service, default):
    return _port(service, default, f"port the {service} service listens on", (service, "lab"))


def _service_url(service, port, readers=("frontend", "assistant")):
    """A downstream URL: each caller reads it in its server.py and hands it to the client."""
    callers = " and the ".join(readers) + (" call" if len(readers) > 1 else " calls")
    return _knob(f"{service}-url", "url", f"http://{HOST}:{port.default}",
                 f"base URL the {callers} the {service} service at", readers, "connection",
                 tuple(f"services/{reader}/server.py" for reader in readers))


_SERVICE_PORTS = (_service_port("frontend", 8080), _service_port("customer", 8081),
                  _service_port("driver", 8082), _service_port("route", 8083),
                  _service_port("assistant", 8084), _service_port("model", 8085))

KNOBS: tuple[Knob, ...] = (
    # Ports: one per tracequest.host.ports.Ports field (field x_y is knob x-y-port).
    *_SERVICE_PORTS,
    _port("otlp-grpc", 4317, "OTLP/gRPC port the lab receives spans on", ("backend", "lab")),
    _port("otlp-http", 4318, "OTLP/HTTP port the lab receives spans on", ("backend", "lab")),
    _port("query", 16686, "port of the query API and the trace pages", ("backend", "lab")),
    _port("jaeger-otlp-grpc", 4327, "real Jaeger's own OTLP/gRPC port, behind a collector"),
    _port("jaeger-otlp-http", 4328, "real Jaeger's own OTLP/HTTP port, behind a collector"),
    _port("jaeger-query-grpc", 16685, "real Jaeger's gRPC query port"),
    _port("jaeger-metrics", 8888, "real Jaeger's own metrics port"),
    _port("collector-metrics", 8889, "the Collector's own metrics port"),
    _port("collector-health", 13133, "the Collector's health check (health_check extension)"),
    _port("spanmetrics", 9464, "where the Collector serves the metrics it derives from spans"),
    _port("zipkin", 9411, "the Zipkin server: its API v2, its Lens UI and its span intake"),
    _port("prometheus", 9090, "the Prometheus server that scrapes the span metrics"),

    # Where things are.
    _knob("host", "host", HOST, "interface a service listens on (0.0.0.0 inside a container)",
          SERVICES, "connection", SERVICE_START),
    *(_service_url(port.name.removesuffix("-port"), port) for port in _SERVICE_PORTS[1:4]),
    _service_url("assistant", _SERVICE_PORTS[4], ("frontend",)),
    _service_url("model", _SERVICE_PORTS[5], ("assistant",)),
    _knob("query-url", "url", f"http://{HOST}:16686",
          "query API the client and notebooks use when no lab is found", ("client",),
          "connection", "src/tracequest/traces/client.py", env="TRACEQUEST_QUERY_URL"),
    _knob("frontend-url", "url", f"http://{HOST}:8080",
          "frontend the notebooks use when no lab is found", ("client",),
          "connection", "src/tracequest/lab/notebook.py", env="TRACEQUEST_FRONTEND_URL"),

    # HotROD's problems, each behind a fix flag. customer/server.py hands the two database
    # knobs to database.py's Database, which implements them under other names.
    _knob("fix-db-query-delay", "duration", 0.300,
          "latency of the simulated remote database per query", ("customer",), "fix",
          "services/customer/server.py"),
    _knob("fix-disable-db-conn-mutex", "bool", False,
          "let queries run side by side instead of queueing for one connection",
          ("customer",), "fix", "services/customer/server.py"),
    _knob("fix-route-worker-pool-size", "count", 3,
          "how many route calls the frontend runs at the same time", ("frontend",), "fix",
          "services/frontend/server.py"),

    # Failures.
    _knob("redis-error-rate", "rate", 1 / 12,
          "share of simulated Redis reads that time out", ("driver",), "failure",
          "services/driver/redis.py"),
    # Regressions: off keeps the demo healthy; quest 12's check turns on one at a time,
    # and each breaks exactly one property a trace test can guard.
    _knob("regression-double-customer-call", "bool", False,
          "regression: the frontend asks the customer service twice per dispatch",
          ("frontend",), "failure", "services/frontend/best_eta.py"),
    _knob("regression-unbounded-route-calls", "bool", False,
          "regression: the frontend runs every route call at once, whatever the pool size",
          ("frontend",), "failure", "services/frontend/best_eta.py"),
    _knob("regression-error-without-exception", "bool", False,
          "regression: a timed-out Redis read ends in error without an exception event",
          ("driver",), "failure", "services/driver/redis.py"),

    # Simulated latencies: fine at their defaults; quest 03's mystery turns one up.
    _knob("payment-delay", "duration", 0.005,
          "latency of the simulated payment provider", ("frontend",), "delay",
          "services/frontend/payment.py"),
    _knob("redis-find-delay", "duration", 0.020,
          "latency of the simulated Redis lookup of nearby drivers", ("driver",), "delay",
          "services/driver/redis.py"),
    _knob("redis-get-delay", "duration", 0.010,
          "latency of one simulated Redis read of a driver", ("driver",), "delay",
          "services/driver/redis.py"),
    _knob("redis-timeout", "duration", 0.030,
          "how long a simulated Redis read waits before it times out", ("driver",), "delay",
          "services/driver/redis.py"),
    _knob("route-calc-delay", "duration", 0.050,
          "time one route calculation takes", ("route",), "delay", "services/route/eta.py"),

    # The model server (chapter 11): latency grows with tokens, and it fails on demand.
    _knob("model-first-token-delay", "duration", 0.020,
          "time the model server waits before the first token of every answer", ("model",),
          "delay", "services/model/server.py"),
    _knob("model-prompt-token-latency", "duration", 0.000020,
          "time the model server spends reading each prompt token", ("model",), "delay",
          "services/model/server.py"),
    _knob("model-token-latency", "duration", 0.004,
          "time the model server spends writing each answer token", ("model",), "delay",
          "services/model/server.py"),
    _knob("model-rate-limit-every", "int", 0,
          "the model server answers every Nth request with 429 and a retry-after (0: never)",
          ("model",), "failure", "services/model/server.py"),
    _knob("model-retry-after", "duration", 0.200,
          "how long a rate-limited answer tells the caller to wait", ("model",), "failure",
          "services/model/server.py"),
    _knob("model-max-output-tokens", "count", 4096,
          "most tokens in one answer; a longer answer is cut with finish_reason=length",
          ("model",), "failure", "services/model/server.py"),
    _knob("model-tool-loop", "bool", False,
          "the model asks for a tool again and again and never answers", ("model",), "failure",
          "services/model/server.py"),
    _knob("assistant-max-iterations", "count", 6,
          "most model calls the assistant makes for one question before it gives up",
          ("assistant",), "run", "services/assistant/server.py"),
    _knob("assistant-capture-content", "bool", False,
          "record prompts, answers and tool arguments on the spans (they may hold personal data)",
          ("assistant",), "run", "services/assistant/server.py"),

    # The price table the assistant costs each model call with, in US dollars per million tokens.
    _knob("price-input-tokens", "price", 0.40,
          "price of a million prompt tokens not read from the cache", ("assistant",), "price",
          "services/assistant/domain.py"),
    _knob("price-cached-input-tokens", "price", 0.10,
          "price of a million prompt tokens read from the model's prompt cache", ("assistant",),
          "price", "services/assistant/domain.py"),
    _knob("price-output-tokens", "price", 1.60,
          "price of a million answer tokens", ("assistant",), "price",
          "services/assistant/domain.py"),

    # The embedded backend's store: oldest whole traces go first beyond either bound.
    _knob("max-spans", "count", 1_000_000,
          "most spans the embedded backend keeps", ("backend",), "storage",
          "src/tracequest/backend/store.py"),
    _knob("max-age", "duration", 24 * 3600.0,
          "how long the embedded backend keeps a trace (0: no age limit)", ("backend",), "storage",
          "src/tracequest/backend/store.py"),

    # Runs.
    _knob("seed", "seed", None,
          "seed for the random delays, timeouts and driver ids (unset: new each run)",
          SERVICES, "run", SERVICE_START),
)


# --- finding knobs by name -----------------------------------------------------------

_BY_KEY = {key: k for k in KNOBS for key in (k.name, k.flag, k.env, k.dest)}


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate spelled most like `name` (by difflib's ratio), or None if none."""
    candidates = list(candidates)
    folded = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), folded, n=1, cutoff=0.0)
    return folded[match[0]] if match else None


def knob(name_or_env: str) -> Knob:
    """The knob called `name_or_env`: a name, ``--flag`` or environment twin.

    Anything else raises UnknownKnob naming the nearest known spelling of the same sort.
    """
    key = name_or_env.strip()
    found = _BY_KEY.get(key)
    if found is not None:
        return found
    if key.startswith(("TQ_", "TRACEQUEST_")) or key.isupper():
        candidates = [k.env for k in KNOBS]
    elif key.startswith("--"):
        candidates = [k.flag for k in KNOBS]
    else:
        candidates = [k.name for k in KNOBS]
    raise UnknownKnob(key, nearest(key, candidates))


def for_reader(reader: str) -> list[Knob]:
    """The knobs `reader` reads, in table order."""
    if reader not in READERS:
        raise KnobError(f"unknown reader {reader!r}; did you mean {nearest(reader, READERS)!r}?")
    return [k for k in KNOBS if reader in k.readers]


def check_env_names(names: Iterable[str]) -> None:
    """Refuse a ``TQ_*`` name that is neither a knob's twin nor in OTHER_TQ_ENV.

    Raises UnknownKnob for the first such name (alphabetically), naming the nearest known one.
    """
    known = {k.env for k in KNOBS} | set(OTHER_TQ_ENV)
    for name in sorted(names):
        if name.startswith("TQ_") and name not in known:
            raise UnknownKnob(name, nearest(name, sorted(known)))


def as_env(values: Mapping[str, object]) -> dict[str, str]:
    """Knob values (by name, flag or twin; text or parsed) → their environment twins.

    ``as_env({"fix-db-query-delay": 0.005})`` is ``{"TQ_FIX_DB_QUERY_DELAY": "5ms"}``;
    text is checked with the knob's parser, so a bad value fails here, not in a child.
    """
    env = {}
    for key, value in values.items():
        k = knob(key)
        parsed = k.parse(value) if isinstance(value, str) else value
        env[k.env] = k.show(parsed)
    return env


def defaults(reader: str | None = None) -> dict[str, object]:
    """Default values by knob name, of one reader's knobs or of all."""
    return {k.name: k.default for k in (KNOBS if reader is None else for_reader(reader))}


# --- the table as documentation ------------------------------------------------------

def markdown_table(knobs: Iterable[Knob] = KNOBS) -> str:
    """The knobs as a Markdown table, as the README shows them."""
    lines = ["| knob | environment | default | read by | read in | what it sets |",
             "|---|---|---|---|---|---|"]
    for k in knobs:
        default = f"`{k.show(k.default)}`" if k.default is not None else "unset"
        read_in = ", ".join(f"`{path}`" for path in k.read_at)
        lines.append(f"| `{k.name}` | `{k.env}` | {default} | {', '.join(k.readers)} "
                     f"| {read_in} | {k.help} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Print the knob table as Markdown, for the README."""
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
