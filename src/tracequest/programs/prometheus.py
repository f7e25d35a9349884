"""Prometheus for the lab: find it, run it on our ports, and read its HTTP API.

The Collector's spanmetrics connector turns spans into RED metrics (calls,
errors, duration histograms) and serves them on its Prometheus exporter.
Prometheus scrapes them there, keeps the exemplars (the trace ids of sampled
spans) that come with them, and answers PromQL; Jaeger's Monitor tab reads the
same series back from it. The lab uses the Prometheus a learner installs from
their distribution (Debian's ``prometheus`` package, 2.42 here), never a
system service: it runs its own process with its own config and data under the
lab's home, on 127.0.0.1 only.

The reader at the bottom (:func:`query`, :func:`query_range`,
:func:`exemplars`) is what tests and notebooks use to ask Prometheus
questions; it turns the JSON answers into small records and nothing more.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from tracequest.errors import TraceQuestError
from tracequest.host.ports import HOST, Ports
from tracequest.host.procs import Process
from tracequest.programs.cache import Program, ProgramError, is_executable

#: How a learner on Debian or Ubuntu gets Prometheus (CI installs it the same way).
INSTALL_COMMAND = "sudo apt-get install prometheus"
#: The release Debian 12 packages (what the native tests run); compose pulls the same.
PROMETHEUS_VERSION = "2.42.0"
PROMETHEUS_IMAGE = f"prom/prometheus:v{PROMETHEUS_VERSION}"
#: Where Debian's package puts the binary, in case PATH lacks /usr/bin (cron, odd shells).
_FALLBACKS = ("/usr/bin/prometheus",)
#: How often the lab's Prometheus scrapes: short, because the connector flushes every
#: 5s and keeps each exemplar for one flush only, and tests should not wait long.
SCRAPE_INTERVAL = "2s"
#: The scrape job's name: the ``job`` label of every scraped series.
JOB = "spanmetrics"
DEFAULT_URL = f"http://{HOST}:{Ports().prometheus}"
#: The variable that points the lab at a Prometheus binary of one's own.
OVERRIDE = "PROMETHEUS_BIN"


# --- finding and running it ----------------------------------------------------------

def find_prometheus() -> Path | None:
    """A usable Prometheus binary, or None: ``$PROMETHEUS_BIN`` first, then PATH, then /usr/bin."""
    override = os.environ.get("PROMETHEUS_BIN")
    if override:
        path = Path(override).expanduser()
        return path if is_executable(path) else None
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    return next((Path(p) for p in _FALLBACKS if is_executable(Path(p))), None)


def prometheus_missing_reason() -> str:
    """One sentence for a pytest skip or an error: why Prometheus is absent and how to get it."""
    if os.environ.get("PROMETHEUS_BIN"):
        return (f"PROMETHEUS_BIN={os.environ['PROMETHEUS_BIN']} is not an executable file; "
                "fix it or unset it to use the prometheus on PATH.")
    return (f"Prometheus is not installed: run `{INSTALL_COMMAND}` (Debian/Ubuntu), or "
            "download it from https://prometheus.io/download/ and set PROMETHEUS_BIN "
            "to the prometheus binary.")


def config_text(ports: Ports, scrape_interval: str = SCRAPE_INTERVAL) -> str:
    """The native twin of compose/prometheus/prometheus.yml, aimed at 127.0.0.1."""
    return (
        "# Written by the lab (tracequest.programs.prometheus.write_config); edits are overwritten.\n"
        "# The Docker variant mounts compose/prometheus/prometheus.yml instead.\n"
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['{HOST}:{ports.spanmetrics}']\n"
    )


def write_config(home: Path | str, ports: Ports, scrape_interval: str = SCRAPE_INTERVAL) -> Path:
    """Write the lab's Prometheus config under ``home``; return its path.

    It scrapes the Collector's span metrics at 127.0.0.1:<ports.spanmetrics>.
    """
    folder = Path(home) / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    temporary = path.with_suffix(".yml.tmp")
    temporary.write_text(config_text(ports, scrape_interval))
    os.replace(temporary, path)
    return path


def prometheus_process(ports: Ports, home: Path | str, binary: Path | None = None,
                       scrape_interval: str = SCRAPE_INTERVAL) -> tuple[list[str], dict[str, str], str]:
    """How to run the lab's Prometheus: ``(argv, extra environment, readiness URL)``.

    Writes its config first. Its data lives in ``home``/prometheus/data, so it
    never touches a system Prometheus's files. Exemplar storage is a feature
    flag in Prometheus 2.x and 3.x alike: without it the trace ids are dropped.
    """
    binary = binary or find_prometheus()
    if binary is None:
        raise ProgramError(prometheus_missing_reason())
    config = write_config(home, ports, scrape_interval)
    data = (Path(home) / "prometheus" / "data").resolve()
    argv = [
        str(binary),
        f"--config.file={config.resolve()}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=1d",   # a lab, not an archive
        f"--web.listen-address={HOST}:{ports.prometheus}",
        "--enable-feature=exemplar-storage",
    ]
    return argv, {}, f"http://{HOST}:{ports.prometheus}/-/ready"


def prometheus_program(ports: Ports, home: Path | str) -> Process:
    """The lab's Prometheus as a program of a lab (only when it is installed)."""
    argv, env, ready_url = prometheus_process(ports, home)
    return Process("prometheus", argv, ready_url, env)


#: Debian's package, never made by the lab: ``backends build`` names the install command.
PROGRAM = Program(
    name="prometheus", title=f"Prometheus {PROMETHEUS_VERSION}", version=PROMETHEUS_VERSION,
    image=PROMETHEUS_IMAGE, origin=f"Debian's prometheus package ({INSTALL_COMMAND})",
    override=OVERRIDE, find=find_prometheus, missing_reason=prometheus_missing_reason)


# --- reading its HTTP API ------------------------------------------------------------

class PrometheusError(TraceQuestError):
    """Prometheus answered with an error (a bad query, say); the message is its own."""


class PrometheusUnavailable(PrometheusError):
    """Nothing answers at the Prometheus URL."""


@dataclass(frozen=True)
class Sample:
    """One series' value at one instant (an instant query's answer)."""

    labels: dict[str, str]
    value: float
    time: float


@dataclass(frozen=True)
class Series:
    """One series over time (a range query's answer): ``points`` are (unix time, value)."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Exemplar:
    """One sampled observation that points back at a span: the way from a metric to a trace."""

    series: dict[str, str]   # the labels of the series it belongs to (a bucket's ``le`` among them)
    labels: dict[str, str]   # its own labels: trace_id and span_id
    value: float             # what was observed, e.g. a duration in milliseconds
    time: float

    @property
    def trace_id(self) -> str | None:
        return self.labels.get("trace_id")


def _seconds(moment) -> float:
    """A time for the API: datetime or unix seconds."""
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def _api(url: str, path: str, params: dict, timeout: float) -> object:
    base = url.rstrip("/")
    try:
        response = requests.get(base + path, params=params, timeout=timeout)
    except requests.ConnectionError:
        raise PrometheusUnavailable(
            f"no Prometheus answers at {base}. Start the lab with `tracequest up --backend "
            "fan-out` (Prometheus must be installed), or pass the URL of yours.") from None
    except requests.Timeout:
        raise PrometheusUnavailable(f"Prometheus at {base} did not answer within {timeout}s") from None
    try:
        body = response.json()
    except ValueError:
        raise PrometheusError(f"{base}{path} answered {response.status_code} with no JSON: "
                              f"{response.text[:200]}") from None
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused {params.get('query')!r}: "
                              f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    return body["data"]


def query(url: str, promql: str, at=None, timeout: float = 10.0) -> list[Sample]:
    """The value of ``promql`` now (or ``at``), one Sample per series.

    A scalar answer comes back as one Sample with no labels.
    """
    params = {"query": promql}
    if at is not None:
        params["time"] = _seconds(at)
    data = _api(url, "/api/v1/query", params, timeout)
    if data["resultType"] in ("scalar", "string"):
        moment, value = data["result"]
        return [Sample({}, float(value), float(moment))]
    return [Sample(item["metric"], float(item["value"][1]), float(item["value"][0]))
            for item in data["result"]]


def query_range(url: str, promql: str, start, end, step: float | str = 5,
                timeout: float = 10.0) -> list[Series]:
    """``promql`` evaluated every ``step`` seconds from ``start`` to ``end``, one Series per series."""
    params = {"query": promql, "start": _seconds(start), "end": _seconds(end), "step": step}
    data = _api(url, "/api/v1/query_range", params, timeout)
    return [Series(item["metric"], [(float(t), float(v)) for t, v in item["values"]])
            for item in data["result"]]


def exemplars(url: str, promql: str, start, end, timeout: float = 10.0) -> list[Exemplar]:
    """The exemplars stored for the series ``promql`` selects between ``start`` and ``end``.

    Needs a Prometheus started with ``--enable-feature=exemplar-storage``
    (the lab's is); without it the answer is simply empty.
    """
    params = {"query": promql, "start": _seconds(start), "end": _seconds(end)}
    data = _api(url, "/api/v1/query_exemplars", params, timeout)
    return [Exemplar(group["seriesLabels"], ex["labels"], float(ex["value"]), float(ex["timestamp"]))
            for group in data or [] for ex in group["exemplars"]]
