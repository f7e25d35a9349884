"""Small helpers for the chapter notebooks.

Everything here is ordinary code a learner may read: finding the running lab,
sending one request and waiting for its trace, a second lab for experiments,
an OpenTelemetry SDK set-up for spans made in a notebook, and a few HTML
pictures (questions with hidden answers, tables, bar charts). Nothing in it
is needed to understand tracing; it only keeps the notebook cells short.
"""

from __future__ import annotations

import atexit
import html
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

from services.common.knobs import knob
from tracequest.errors import TraceQuestError
from tracequest.host.paths import repo_root  # noqa: F401  (the notebooks import it from here)
from tracequest.host.ports import HOST, Ports
from tracequest.host.procs import until
from tracequest.lab.home import find_home
from tracequest.lab.lab import Lab
from tracequest.lab.load import run_load
from tracequest.lab.sdk import tracer_provider  # noqa: F401  (the notebooks import it from here)
from tracequest.lab.settings import SERVICES, LabSettings
from tracequest.traces.client import QueryClient, TraceNotFound, default_url
from tracequest.traces.model import Trace


class LabNotRunning(TraceQuestError):
    """No lab answers; the message tells the learner how to start one."""


# --- the lab -----------------------------------------------------------------


class LabHandle:
    """What a notebook needs from a running lab: its URLs, a query client, requests.

    ``lab`` is the :class:`~tracequest.lab.Lab` started by ``make up`` (None when
    the notebook talks to a backend someone else started, e.g. Jaeger in Docker).
    """

    def __init__(self, lab: Lab | None, query_url: str, frontend_url: str, otlp_endpoint: str):
        self.lab = lab
        self.query_url = query_url
        self.frontend_url = frontend_url
        self.otlp_endpoint = otlp_endpoint
        self.client = QueryClient(query_url)
        self._http = requests.Session()

    def __repr__(self) -> str:
        return f"<lab frontend={self.frontend_url} traces={self.query_url}>"

    @property
    def backend(self) -> str:
        if self.lab is not None:
            return f"{self.lab.backend} (started by `make up`, state in {self.lab.home})"
        return f"whatever answers Jaeger's API v3 at {self.query_url}"

    def dispatch(self, customer: str = "123", session: str | None = None,
                 headers: dict | None = None) -> tuple[requests.Response, str | None]:
        """One /dispatch request; returns the response and the trace id it reports.

        The frontend names its trace in the W3C ``traceresponse`` header:
        ``00-<trace id>-<span id>-<flags>``.
        """
        headers = dict(headers or {})
        if session:
            headers["X-Session-Id"] = session
        response = self._http.get(f"{self.frontend_url}/dispatch", params={"customer": customer},
                                  headers=headers, timeout=30)
        parts = response.headers.get("traceresponse", "").split("-")
        return response, (parts[1] if len(parts) == 4 else None)

    def trace(self, trace_id: str, complete: bool = True, timeout: float = 20.0) -> Trace:
        """The trace with this id, once all its spans have arrived (see :func:`complete_trace`)."""
        return complete_trace(self.client, trace_id, complete, timeout)

    def new_trace(self, customer: str = "123", **kwargs) -> Trace:
        """Send one /dispatch request and return its complete trace."""
        response, trace_id = self.dispatch(customer, **kwargs)
        response.raise_for_status()
        return self.trace(trace_id)

    def log(self, program: str, lines: int = 20) -> str:
        """The last ``lines`` lines a program of this lab printed (e.g. "collector")."""
        if self.lab is None:
            return ""
        path = self.lab.log_dir / f"{program}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def load(self, n: int = 20, concurrency: int = 4):
        """``n`` /dispatch requests, ``concurrency`` at a time (see tracequest.lab.load)."""
        return run_load(self.frontend_url, n, concurrency, progress=None)


def complete_trace(client: QueryClient, trace_id: str, complete: bool = True,
                   timeout: float = 20.0, settle: float = 0.4) -> Trace:
    """Fetch a trace from any backend, waiting until all its spans have arrived.

    Services export in batches, so a trace reaches the backend in pieces.
    With ``complete`` we wait until it has a root span and no orphans (the
    root span ends last, so it is exported last); without it, only until its
    span count has stopped growing for ``settle`` seconds.
    """
    deadline = time.monotonic() + timeout
    found = None

    def whole() -> bool:
        nonlocal found
        left = max(1.0, deadline - time.monotonic())
        found = client.wait_for_trace(trace_id, timeout=left, settle=settle)
        return not complete or bool(found.roots and not found.orphans)

    until(whole, timeout, interval=0.2)
    return found


def connect(home: str | Path | None = None) -> LabHandle:
    """Find the running lab: ``$TRACEQUEST_HOME``, else the nearest ``.tracequest/``.

    Without a lab started by ``make up``, a backend at ``$TRACEQUEST_QUERY_URL``
    (default http://127.0.0.1:16686) and a frontend at ``$TRACEQUEST_FRONTEND_URL``
    (the frontend port's default) do too: that is the Docker set-up.
    """
    home = Path(home) if home else find_home()
    lab = Lab.from_state(home)
    if lab is not None:
        handle = LabHandle(lab, lab.query_url, lab.frontend_url, f"http://{HOST}:{lab.ports.otlp_grpc}")
        if handle.client.is_up() and _answers(f"{lab.frontend_url}/health"):
            return handle
        raise LabNotRunning(
            f"The lab recorded in {home} is not answering (it may have been stopped or crashed). "
            "Start the lab with `make up` (or `tracequest up`), then run this cell again."
        )
    defaults = Ports()  # the knob table's ports: what compose publishes too
    query_url = default_url()
    frontend = knob("frontend-url")
    frontend_url = frontend.parse(os.environ.get(frontend.env) or frontend.default)
    handle = LabHandle(None, query_url, frontend_url,
                       os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{HOST}:{defaults.otlp_grpc}"))
    if handle.client.is_up() and _answers(f"{frontend_url}/health"):
        return handle
    raise LabNotRunning(
        f"No lab is running: there is no {home / 'lab.json'} and nothing answers at {query_url}. "
        "Start the lab with `make up` in the repository folder, then run this cell again."
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def fresh_lab(backend: str = "embedded", collector_config: str = "collector",
              services: tuple[str, ...] = SERVICES, backend_env: dict | None = None,
              storage: str = "memory", **service_env: str):
    """A second, throw-away lab on free ports, e.g. with fix flags; stopped on exit.

    ``with fresh_lab(TQ_FIX_DISABLE_DB_CONN_MUTEX="1") as other: ...`` leaves
    the main lab alone: new ports, a temporary home, its own spans. With
    ``backend="collector"`` it is what ``tracequest up --backend collector``
    starts: the real Jaeger with a collector running ``collector_config`` in
    front of it (``services=()`` leaves the demo out). ``storage="badger"``
    gives real Jaeger Badger files in the lab's temporary home, so a restart
    inside the ``with`` block keeps its traces.
    """
    with tempfile.TemporaryDirectory(prefix="tracequest-") as home, _ports_of_one_lab() as ports:
        settings = LabSettings(backend=backend, collector_config=collector_config, ports=ports,
                               services=services, service_env=service_env,
                               backend_env=backend_env or {}, storage=storage)
        lab = Lab(settings, home)
        lab.up(log=lambda *_: None)
        try:
            yield LabHandle(lab, lab.query_url, lab.frontend_url, f"http://{HOST}:{lab.ports.otlp_grpc}")
        finally:
            lab.down(log=lambda *_: None)


# Ports of the fresh labs this process has open. Ports.free() only sees ports
# that are bound already; a lab that is still starting in another thread has
# not bound all of its own yet, so a second lab must steer clear of them.
_PORTS_TAKEN: set[int] = set()
_PORTS_LOCK = threading.Lock()


@contextmanager
def _ports_of_one_lab():
    with _PORTS_LOCK:
        ports = Ports.free()
        while _PORTS_TAKEN & set(ports.as_dict().values()):
            ports = Ports.free()
        mine = set(ports.as_dict().values())
        _PORTS_TAKEN.update(mine)
    try:
        yield ports
    finally:
        with _PORTS_LOCK:
            _PORTS_TAKEN.difference_update(mine)


class BackgroundLab:
    """A :func:`fresh_lab` that starts in a background thread and lasts over several cells.

    Starting a lab with Zipkin takes a while (a JVM), so a chapter can read on
    while it starts: ``starting = BackgroundLab(backend="fan-out")`` returns at
    once, ``starting.ready()`` waits and returns the :class:`LabHandle`, and
    ``starting.close()`` stops the lab. Python's exit stops it too, so a cell
    that fails halfway does not leave the lab's programs running.
    """

    def __init__(self, **options):
        self._stack = ExitStack()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fresh-lab")
        self._started = self._pool.submit(self._stack.enter_context, fresh_lab(**options))
        atexit.register(self.close)

    def ready(self, timeout: float | None = None) -> LabHandle:
        """The lab, once every program answers (re-raises the reason if it could not start)."""
        return self._started.result(timeout)

    def close(self) -> None:
        """Stop the lab (after its start has finished, whether it worked or not)."""
        self._started.exception()   # waits; a failed start has nothing to stop
        self._stack.close()
        self._pool.shutdown()
        atexit.unregister(self.close)


# --- spans made in the notebook --------------------------------------------------


def wait_for(fetch, timeout: float = 15.0, interval: float = 0.2):
    """Call ``fetch()`` until it returns something other than None (or raises TraceNotFound)."""
    got = [None]

    def arrived() -> bool:
        try:
            got[0] = fetch()
        except TraceNotFound:
            got[0] = None
        return got[0] is not None

    until(arrived, timeout, interval)
    return got[0]


# --- pictures ----------------------------------------------------------------------


class HTML:
    """A piece of HTML that Jupyter shows as HTML and a terminal shows as text."""

    def __init__(self, markup: str, text: str | None = None):
        self.markup = markup
        self.text = markup if text is None else text

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


def reveal(question: str, answer: str) -> HTML:
    """A knowledge-check question whose answer opens on a click."""
    markup = (f'<details style="margin:6px 0"><summary><b>{html.escape(question)}</b> '
              f'<span style="color:#6b7280">(click for the answer)</span></summary>'
              f'<div style="margin:6px 0 0 18px">{html.escape(answer)}</div></details>')
    return HTML(markup, f"Q: {question}\n(answer hidden; open it in Jupyter)")


def table(rows: list[dict] | list[list], headers: list[str] | None = None) -> HTML:
    """Rows (dicts, or lists with ``headers``) as an HTML table."""
    rows = list(rows)
    if rows and isinstance(rows[0], dict):
        headers = headers or list(dict.fromkeys(k for row in rows for k in row))
        rows = [[row.get(h, "") for h in headers] for row in rows]
    headers = headers or []
    cell = 'style="padding:2px 10px;text-align:left;border-bottom:1px solid #e5e7eb"'
    head = "".join(f"<th {cell}>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td {cell}>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    text = "\n".join("  ".join(_fmt(v).ljust(w) for v, w in zip(line, widths))
                     for line in [headers, *rows])
    return HTML(f'<table style="border-collapse:collapse;font-size:13px">'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>", text)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def bar_chart(values: dict[str, float], title: str = "", unit: str = "", width: int = 560) -> HTML:
    """A horizontal bar chart drawn as inline SVG: one bar per label."""
    label_w, bar_h, gap, top = 190, 22, 8, 30 if title else 8
    biggest = max(values.values(), default=0) or 1
    plot_w = width - label_w - 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{top + len(values) * (bar_h + gap) + 4}" font-family="sans-serif" font-size="12">']
    if title:
        parts.append(f'<text x="0" y="18" font-size="14" font-weight="600">{html.escape(title)}</text>')
    for i, (label, value) in enumerate(values.items()):
        y = top + i * (bar_h + gap)
        w = max(1.0, value / biggest * plot_w)
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#3f7cc4" rx="2"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{html.escape(_fmt(value))} {html.escape(unit)}</text>')
    parts.append("</svg>")
    text = "\n".join(f"{label:>28}  {_fmt(value)} {unit}" for label, value in values.items())
    return HTML("".join(parts), f"{title}\n{text}" if title else text)


def side_by_side(*items, titles: list[str] | None = None) -> HTML:
    """Show several HTML-able things (traces, tables) next to each other on a wide page, else one above the other."""
    titles = titles or [""] * len(items)
    cells = "".join(
        f'<div style="flex:1 1 680px;min-width:0;overflow-x:auto"><div style="font-weight:600;margin-bottom:4px">'
        f"{html.escape(t)}</div>{item._repr_html_()}</div>" for t, item in zip(titles, items))
    text = "\n\n".join(f"{t}\n{item}" for t, item in zip(titles, items))
    return HTML(f'<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">{cells}</div>', text)
