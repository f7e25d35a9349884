"""The learner's class file, the queue of records waiting for the board, and sending that queue.

``<home>/class.json`` (mode 0600) says which board, and as whom
(:func:`load_class`, :func:`save_class`). Each record waits as
``<home>/class-queue/<attempt_id>.json`` (:func:`enqueue`) until
:func:`send_pending` has the board count it. A file leaves the queue only
once the board has counted it (stored, or a duplicate it already had), so
flaky Wi-Fi loses nothing, and the attempt id makes a record sent twice count
once. A record the board refuses moves to ``class-queue/rejected/`` with the
board's answer beside it. The token travels only in the ``Authorization``
header.

This is the machinery under the learner's commands in
:mod:`tracequest.classroom.client` (join, the report after a check, status,
leave), which all read and send through it; it lives apart from them so the
commands read as what a learner sees, and the files and retries as one piece.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from tracequest.classroom.records import ClassError, validate

CLASS_FILE = "class.json"
QUEUE_DIR = "class-queue"
REJECTED_DIR = "rejected"
#: How many records one request carries at most (the board takes up to 100).
BATCH = 100
_ATTEMPT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Summary:
    """What one ``send_pending`` did."""

    stored: int = 0        # records the board stored now
    duplicates: int = 0    # records the board already had (an earlier answer got lost)
    rejected: int = 0      # records the board refused, moved to rejected/
    queued: int = 0        # records still waiting in the queue
    unreachable: bool = False   # the board did not answer (or was too busy) within the time
    problem: str = ""      # why records are still queued, when they are
    refusal: str = ""      # the board's last refusal, when there was one

    @property
    def delivered(self) -> int:
        return self.stored + self.duplicates


# --- the files in the lab home -------------------------------------------------

def queue_dir(home: Path) -> Path:
    return Path(home) / QUEUE_DIR


def rejected_dir(home: Path) -> Path:
    return queue_dir(home) / REJECTED_DIR


def load_class(home: Path) -> dict | None:
    """What ``class.json`` says (url, learner_id, token, name, attempts); None when not joined."""
    path = Path(home) / CLASS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise ClassError(f"{path} cannot be read; run `tracequest class leave`, then join again") from None
    if not (isinstance(data, dict)
            and all(isinstance(data.get(key), str) and data[key] for key in ("url", "learner_id", "token"))):
        raise ClassError(f"{path} is not a class file; run `tracequest class leave`, then join again")
    if not isinstance(data.get("attempts"), dict):
        data["attempts"] = {}
    data.setdefault("name", "")
    return data


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a 0600 temp file beside it, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_class(home: Path, state: dict) -> None:
    """Write ``class.json`` whole, readable by the learner only."""
    _write_private(Path(home) / CLASS_FILE, json.dumps(state, indent=2, ensure_ascii=False) + "\n")


def pending(home: Path) -> list[Path]:
    """The queued record files, oldest first."""
    folder = queue_dir(home)
    if not folder.is_dir():
        return []
    files = []
    for path in folder.glob("*.json"):
        try:   # another `tracequest check` may be sending (and removing) it right now
            files.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue
    return [path for _, _, path in sorted(files)]


def rejected(home: Path) -> list[Path]:
    """The record files the board refused, each with ``<name>.error.txt`` beside it."""
    folder = rejected_dir(home)
    return sorted(p for p in folder.glob("*.json") if p.is_file()) if folder.is_dir() else []


def _reject(path: Path, error: str) -> None:
    """Move a queued file to rejected/, with why beside it, so nothing is lost silently."""
    folder = path.parent / REJECTED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(folder / f"{path.stem}.error.txt", error.rstrip() + "\n")
    try:
        os.replace(path, folder / path.name)
    except FileNotFoundError:   # another `tracequest check` sent it meanwhile
        (folder / f"{path.stem}.error.txt").unlink(missing_ok=True)


def refusal_of(path: Path) -> str:
    """The board's answer kept beside a rejected record."""
    try:
        return (path.parent / f"{path.stem}.error.txt").read_text().strip()
    except OSError:
        return "(no reason kept)"


# --- the queue -----------------------------------------------------------------

def enqueue(records: list[dict], home: Path) -> list[Path]:
    """Queue each record as its own file, named by its attempt id; an invalid one goes to rejected/."""
    folder = queue_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for record in records:
        try:
            clean = validate(record)
        except ClassError as exc:
            attempt_id = record.get("attempt_id") if isinstance(record, dict) else None
            if not (isinstance(attempt_id, str) and _ATTEMPT_ID.fullmatch(attempt_id)):
                attempt_id = uuid.uuid4().hex
            path = folder / f"{attempt_id}.json"
            _write_private(path, json.dumps(record, default=str))
            _reject(path, f"not sent, refused before sending: {exc}")
            continue
        path = folder / f"{clean['attempt_id']}.json"
        _write_private(path, json.dumps(clean, ensure_ascii=False))
        paths.append(path)
    return paths


def send_pending(home: Path, timeout: float = 3.0, attempts: int = 3) -> Summary:
    """Send the queued records in batches of up to 100, retrying within ``timeout`` seconds.

    A file is removed only after a 200 that counted its record stored or
    duplicate. Connection errors, timeouts, 5xx and 429 (its Retry-After
    honoured while it fits in the time left) are retried with backoff, then
    the records stay queued. Any other 4xx moves the refused records to
    rejected/ with the board's answer.
    """
    home = Path(home)
    summary = Summary()
    state = load_class(home)
    files = pending(home)
    if state is None or not files:
        summary.queued = len(files)
        if files:
            summary.problem = "not in a class"
        return summary
    deadline = time.monotonic() + timeout
    items = []
    for path in files:
        try:
            items.append((path, validate(json.loads(path.read_text()))))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, ClassError) as exc:
            _reject(path, f"not sent, the queued file is not a record: {exc}")
            summary.rejected += 1
            summary.refusal = "a queued file was not a record"
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {state['token']}"
        sender = _Sender(session, state["url"], deadline, max(1, attempts), summary)
        for start in range(0, len(items), BATCH):
            if not sender.deliver(items[start:start + BATCH]):
                break
    summary.queued = len(pending(home))
    return summary


class _Sender:
    def __init__(self, session: requests.Session, url: str, deadline: float, attempts: int, summary: Summary):
        self.session, self.url, self.deadline, self.attempts, self.summary = (
            session, url, deadline, attempts, summary)

    def deliver(self, batch: list[tuple[Path, dict]]) -> bool:
        """Send one batch; False when the board cannot be reached (stop sending for now)."""
        response = self._post({"records": [record for _, record in batch]})
        if response is None:
            return False
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
                stored, duplicates = int(data["stored"]), int(data["duplicates"])
            except (ValueError, KeyError, TypeError):
                return self._keep(f"the board's answer (HTTP {status}) did not say what it stored")
            if stored + duplicates != len(batch):
                return self._keep(f"the board counted {stored + duplicates} of {len(batch)} records")
            for path, _ in batch:
                path.unlink(missing_ok=True)
            self.summary.stored += stored
            self.summary.duplicates += duplicates
            return True
        if 400 <= status < 500:
            error = error_of(response)
            if len(batch) > 1 and status in (400, 403, 413, 422):
                # The board refuses a whole request for one bad record: find which, one by one.
                return all(self.deliver([item]) for item in batch)
            for path, _ in batch:
                _reject(path, f"HTTP {status}: {error}")
            self.summary.rejected += len(batch)
            self.summary.refusal = error
            return True
        return self._keep(f"the board answered HTTP {status}; is {self.url} the board's address?")

    def _keep(self, problem: str) -> bool:
        self.summary.problem = problem
        return False

    def _post(self, body: dict) -> requests.Response | None:
        """The board's answer that is not worth retrying, or None when retries ran out (problem set)."""
        delay = 0.25
        for attempt in range(self.attempts):
            left = self.deadline - time.monotonic()
            if left <= 0.01:
                break
            wait = delay
            try:
                response = self.session.post(f"{self.url}/api/records", json=body, timeout=left,
                                             allow_redirects=False)
            except requests.Timeout:
                self.summary.problem = f"the board at {self.url} did not answer in time"
            except requests.RequestException:
                self.summary.problem = f"nothing answers at {self.url}"
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                self.summary.problem = (f"the board at {self.url} is busy (HTTP {status})" if status == 429
                                        else f"the board at {self.url} had a problem (HTTP {status})")
                after = _retry_after(response)
                if after is not None:
                    if after > self.deadline - time.monotonic():
                        break
                    wait = after
            if attempt == self.attempts - 1:
                break
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                break
            time.sleep(wait)
            delay *= 2
        self.summary.unreachable = True
        return None


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def error_of(response: requests.Response) -> str:
    """The board's one-sentence error, else what the HTTP status says."""
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str) and error.strip():
        return one_line(error).rstrip(".")
    return f"HTTP {response.status_code} (is that address a Trace Quest class board?)"


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    return " ".join(str(text).split())[:limit]
