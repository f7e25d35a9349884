"""Child processes of the lab: start them, wait until they are ready, stop them.

Every program the lab runs goes through here: the embedded backend, the demo
services, Jaeger, collectors, and a learner's app in a quest check. A process
is known by its pid *and* its start time, so stopping never signals a program
the lab did not start, even after a reboot has handed an old pid to another.

Waiting is done in one place too: :func:`until` polls a condition, and
:func:`settled` polls a reading until it stops changing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from tracequest.errors import LabError, TraceQuestError

TAIL_LINES = 15
_SAME_START = 0.05  # seconds: start times are recorded in clock ticks


def scrub_otel(env: Mapping[str, str]) -> dict[str, str]:
    """The environment without OTEL_* settings, for a program whose telemetry we decide."""
    return {k: v for k, v in env.items() if not k.startswith("OTEL_")}


def environment(extra: Mapping[str, str] | None = None, scrub: bool = False) -> dict[str, str]:
    """This process's environment (OTEL_* removed when ``scrub``), with ``extra`` on top."""
    env = scrub_otel(os.environ) if scrub else dict(os.environ)
    env.update(extra or {})
    return env


# --- waiting -------------------------------------------------------------------

def until(condition: Callable[[], object], timeout: float, interval: float = 0.05):
    """Call ``condition`` until it returns something true; return that, or None at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)


def settled(read: Callable[[], object], not_before: float = 0.0, settle: float = 2.0,
            timeout: float = 30.0, patience: float = 5.0, interval: float = 0.25):
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
        time.sleep(interval)


# --- knowing a process -----------------------------------------------------------

@dataclass(frozen=True)
class ProcessId:
    """A process as the system knows it: a pid alone can be reused, pid and start time cannot."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None

    @classmethod
    def from_state(cls, value) -> ProcessId | None:
        """Read what :meth:`as_state` wrote; anything else (an old bare pid) is unknown."""
        if isinstance(value, dict) and isinstance(value.get("pid"), int) \
                and isinstance(value.get("started"), (int, float)):
            return cls(value["pid"], float(value["started"]))
        return None

    def as_state(self) -> dict:
        return {"pid": self.pid, "started": self.started}

    def is_running(self) -> bool:
        """True while this very process runs (not another one that got its pid)."""
        _reap(self.pid)
        try:
            proc = psutil.Process(self.pid)
            return (abs(proc.create_time() - self.started) < _SAME_START
                    and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def describe(self) -> str:
        """'process 1234 (python -m http.server)', for messages."""
        try:
            command = " ".join(psutil.Process(self.pid).cmdline())[:120] or "unknown"
        except psutil.Error:
            return f"process {self.pid} (gone)"
        return f"process {self.pid} ({command})"


_EXIT_CODES: dict[int, int] = {}


def _reap(pid: int) -> None:
    """Collect a finished child of ours, so it does not linger as a zombie; keep its exit code."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        return
    if done == pid:
        _EXIT_CODES[pid] = os.waitstatus_to_exitcode(status)


# --- a running child ---------------------------------------------------------------

class ProcessExited(TraceQuestError):
    """A child ended while we waited for it to become ready."""


class Child:
    """A program the lab started: its identity, its log, and how to stop it."""

    def __init__(self, name: str, ident: ProcessId, log_path: Path | None):
        self.name = name
        self.ident = ident
        self.log_path = Path(log_path) if log_path else None

    def __repr__(self) -> str:
        return f"<Child {self.name} pid={self.pid}>"

    @property
    def pid(self) -> int:
        return self.ident.pid

    def is_running(self) -> bool:
        return self.ident.is_running()

    def exit_code(self) -> int | None:
        """The exit code once it ended, when it is our own child; else None."""
        _reap(self.pid)
        return _EXIT_CODES.get(self.pid)

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` is true; False at ``timeout``; ProcessExited if it ends first."""
        def check():
            if ready():
                return True
            if not self.is_running():
                raise ProcessExited(f"{self.name} exited during start-up")
            return False

        return bool(until(check, timeout))

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM): the services and the SDK flush their spans on it."""
        self._signal(signal.SIGTERM)

    def wait_stopped(self, grace: float = 10.0) -> bool:
        """Wait ``grace`` seconds for it to end, then SIGKILL it; True if it ended by itself."""
        if until(lambda: not self.is_running(), grace):
            return True
        self._signal(signal.SIGKILL, group=True)
        until(lambda: not self.is_running(), 5)
        return False

    def stop(self, grace: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after ``grace`` seconds; True if it ended by itself."""
        if not self.is_running():
            return True
        self.terminate()
        return self.wait_stopped(grace)

    def _signal(self, sig: int, group: bool = False) -> None:
        """Signal the process (and its group, when it leads one); never a stranger."""
        if not self.is_running():
            return
        try:
            if group and os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last lines of its output."""
        if self.log_path is None:
            return []
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


def start(name: str, argv: list[str], log_path: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> Child:
    """Start ``argv`` in the background, its output in ``log_path``, in a session of its own.

    A session of its own lets it outlive the shell command that started it
    (`make up` returns to the prompt) and lets a stuck one be killed with its children.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        popen = subprocess.Popen(argv, env=dict(env) if env is not None else None, cwd=cwd,
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    ident = ProcessId.of(popen.pid) or ProcessId(popen.pid, time.time())
    child = Child(name, ident, log_path)
    child._popen = popen  # keeps Popen from warning that the child is still running
    return child


# --- probes ----------------------------------------------------------------------

class MemorySampler(threading.Thread):
    """A process's resident memory every ``every`` seconds, until stopped: peaks a single read misses."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.process, self.every = psutil.Process(pid), every
        self.samples: list[int] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.samples.append(self.process.memory_info().rss)
            except psutil.Error:  # it exited: what was sampled stands
                return
            self._done.wait(self.every)

    def stop(self) -> list[int]:
        """Stop sampling; return every sample, in bytes."""
        self._done.set()
        self.join()
        return self.samples


# --- a group of programs, started together --------------------------------------

@dataclass
class Process:
    """How to run one program and how to tell that it is ready: what :func:`wait_until_healthy` waits on."""

    name: str
    argv: list[str]
    health_url: str
    env: dict = field(default_factory=dict)
    # A collector's OTLP/HTTP port answers GET with 405: any answer means ready.
    any_answer_is_healthy: bool = False
    # Seconds it may take to answer, when longer than the lab's own timeout (a JVM).
    start_timeout: float = 0.0

    def is_healthy(self) -> bool:
        return answers_http(self.health_url, any_status=self.any_answer_is_healthy)




def wait_until_healthy(group: list[Process], children: dict[str, Child],
                       timeout: float) -> None:
    """Wait until every program of a group answers; the first one to exit fails at once.

    Each answer gives the rest ``timeout`` seconds more, as waiting one by
    one did: on a busy machine a group shares the CPU while it starts.
    Raises LabError naming the program, with the tail of its log.
    """
    waiting = {proc.name: proc for proc in group}
    deadlines = {proc.name: time.monotonic() + max(timeout, proc.start_timeout)
                 for proc in group}

    def all_ready() -> bool:
        for name, proc in list(waiting.items()):
            if proc.is_healthy():
                del waiting[name]
                for other in waiting:
                    deadlines[other] = max(deadlines[other], time.monotonic() + timeout)
            elif not children[name].is_running():
                raise LabError(f"{name} exited during start-up.\n{log_tail(children[name])}")
        late = [n for n in waiting if time.monotonic() > deadlines[n]]
        if late:
            proc = waiting[late[0]]
            raise LabError(f"{proc.name} did not answer {proc.health_url} within "
                           f"{max(timeout, proc.start_timeout):.0f}s.\n"
                           f"{log_tail(children[proc.name])}")
        return not waiting

    while not all_ready():   # all_ready raises when one exits or is late
        time.sleep(0.1)


def log_tail(child: Child) -> str:
    """The last lines a program printed, for an error message."""
    lines = child.tail()
    if not lines:
        return f"(no output in {child.log_path})"
    return f"Last lines of {child.log_path}:\n" + "\n".join("  " + line for line in lines)


def answers_http(url: str, any_status: bool = False, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 200 (or anything below 500 with ``any_status``)."""
    try:
        status = requests.get(url, timeout=timeout).status_code
    except requests.RequestException:
        return False
    return status == 200 or (any_status and status < 500)


def listens(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False
