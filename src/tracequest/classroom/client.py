"""The learner's side of the class board: join once, then every check queues its records and sends them.

``join`` asks the board for a learner id and token and keeps them in
``<home>/class.json`` (mode 0600). After each ``tracequest check``,
``report`` builds one record per quest checked, queues them and sends the
queue; ``status`` says what is queued or refused (and sends it), ``leave``
stops reporting. These are the commands, in the words a learner sees; the
class file, the queue and the sending are :mod:`tracequest.classroom.outbox`
(whose ``load_class``, ``pending``, ``send_pending``, ``Summary``, ... are
importable from here too). Nothing here ever raises into the check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tracequest.classroom.outbox import (CLASS_FILE, Summary, enqueue, error_of, load_class, one_line,
                                         pending, queue_dir, refusal_of, rejected, rejected_dir, save_class,
                                         send_pending)
from tracequest.classroom.records import ClassError, clean_github_username, clean_name, record_from_result
from tracequest.quests.results import RunResults
from tracequest.traces.timefmt import format_rfc3339, now_ns

#: How long a check waits for the board before leaving its records queued.
REPORT_TIMEOUT = 2.0
JOIN_TIMEOUT = 10.0
_EXAMPLE_URL = "http://192.168.1.20:8090"


# --- joining -------------------------------------------------------------------

def check_url(url: str) -> str:
    """A board address, http(s)://host[:port], without a trailing slash; a ClassError says what is wrong."""
    text = str(url).strip()
    if not text:
        raise ClassError(f"the board's address is empty; give it like {_EXAMPLE_URL}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ClassError(f"{text!r} is not a board address like {_EXAMPLE_URL} "
                         "(its port is not a number from 1 to 65535)") from None
    if parts.scheme not in ("http", "https"):
        raise ClassError(f"{text!r} is not a board address like {_EXAMPLE_URL}; "
                         "it starts with http:// or https://")
    if not parts.hostname:
        raise ClassError(f"{text!r} names no machine; give the board's address like {_EXAMPLE_URL}")
    if parts.username or parts.password:
        raise ClassError(f"{text!r} holds a user name or password; give the board's address only, "
                         f"like {_EXAMPLE_URL}")
    if parts.query or parts.fragment:
        raise ClassError(f"{text!r} has a ?... or #... part; give the board's address alone, "
                         f"like {_EXAMPLE_URL}")
    if port == 0:
        raise ClassError(f"{text!r} has port 0; give the port the board prints, like {_EXAMPLE_URL}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def join(url: str, code: str, name: str, home: Path, github_username: str | None = None) -> dict:
    """Join the class at ``url`` with its ``code``; the board's learner id and token go into class.json."""
    home = Path(home)
    url = check_url(url)
    try:
        name = clean_name(name)
        github_username = clean_github_username(github_username)
    except ClassError as exc:
        raise ClassError(f"{exc}; e.g. --name \"Ada Lovelace\" --github ada-l") from None
    code = (code or "").strip()
    if not code:
        raise ClassError("the class code is empty; your instructor's board shows it, e.g. TRACE-7Q4K")
    current = load_class(home)
    if current is not None:
        raise ClassError(f"you are already in the class at {current['url']} as {current['name']!r}; "
                         "run `tracequest class leave` first to join another")
    body = {"code": code, "name": name}
    if github_username:
        body["github_username"] = github_username
    try:
        response = requests.post(f"{url}/api/join", json=body, timeout=JOIN_TIMEOUT, allow_redirects=False)
    except requests.Timeout:
        raise ClassError(f"the class board at {url} did not answer within {JOIN_TIMEOUT:g} s; "
                         "check the address with your instructor") from None
    except requests.RequestException:
        raise ClassError(f"no class board answers at {url}; check the address with your instructor "
                         "(and that you are on the workshop's network)") from None
    if response.status_code != 201:
        raise ClassError(f"the class board at {url} refused: {error_of(response)}")
    data = _json_of(response)
    learner_id, token = data.get("learner_id"), data.get("token")
    if not (isinstance(learner_id, str) and learner_id and isinstance(token, str) and token):
        raise ClassError(f"{url} answered, but not as a Trace Quest class board does")
    state = {"url": url, "learner_id": learner_id, "token": token, "name": name, "attempts": {}}
    save_class(home, state)
    return state


def learner_link(state: dict) -> str:
    """The board page showing only this learner's row (the token is in the #fragment, never sent)."""
    return f"{state['url']}/#learner={state['token']}"


def _json_of(response: requests.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ClassError(f"{response.url} answered, but not as a Trace Quest class board does")
    return data


def _results(count: int) -> str:
    return f"{count} result" if count == 1 else f"{count} results"


# --- after a check -------------------------------------------------------------

def now_rfc3339() -> str:
    """Now in UTC, to the millisecond: 2026-12-04T18:40:00.123Z."""
    return format_rfc3339(now_ns())[:23] + "Z"


def report(results: RunResults, home: Path, out=print) -> Summary | None:
    """After `tracequest check`: queue one record per quest checked and send the queue; one line says how.

    Does nothing when not joined; never raises (the check's own outcome is what matters).
    """
    try:
        home = Path(home)
        state = load_class(home)
        if state is None:
            return None
        at = now_rfc3339()
        counts = dict(state["attempts"])
        records = []
        for quest, result in results.in_quest_order():
            attempt = min(_count(counts.get(quest.id)) + 1, 100_000)
            counts[quest.id] = attempt
            record = record_from_result(result, state["learner_id"], attempt, at)
            record["duration_s"] = min(max(float(record["duration_s"]), 0.0), 3599.0)
            records.append(record)
        if not records:
            return None
        state["attempts"] = counts
        save_class(home, state)   # first, so an attempt number is never used twice
        enqueue(records, home)
        summary = send_pending(home, timeout=REPORT_TIMEOUT)
        out(report_line(summary, home))
        return summary
    except Exception as exc:  # noqa: BLE001 - the board must never break a learner's check
        out(f"Class board: this check was not reported ({one_line(exc) or type(exc).__name__}).")
        return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def report_line(summary: Summary, home: Path) -> str:
    """One line on what a send did."""
    if summary.queued and summary.unreachable and not summary.delivered and not summary.rejected:
        return (f"Class board unreachable: {_results(summary.queued)} queued; {_they_go(summary.queued)} "
                "with your next check (or `tracequest class status`).")
    parts = []
    if summary.delivered or not (summary.queued or summary.rejected):
        parts.append(f"sent {_results(summary.delivered)}")
    if summary.rejected:
        parts.append(f"refused {_results(summary.rejected)} ({summary.refusal}), kept in "
                     f"{rejected_dir(home)}")
    if summary.queued:
        parts.append(f"{_results(summary.queued)} queued ({summary.problem}); {_they_go(summary.queued)} "
                     "with your next check (or `tracequest class status`)")
    return "Class board: " + "; ".join(parts) + "."


def _they_go(count: int) -> str:
    return "it goes" if count == 1 else "they go"


# --- status and leave ----------------------------------------------------------

def status(home: Path, out=print) -> bool:
    """Say whether this lab is in a class and what is queued or refused; send the queue. True when joined."""
    home = Path(home)
    state = load_class(home)
    if state is None:
        out('Not in a class. Join one with: tracequest class join URL CODE --name "Your Name"')
        left = len(pending(home)) + len(rejected(home))
        if left:
            out(f"  {_results(left)} from an earlier class remain in {queue_dir(home)}; "
                "`tracequest class leave` deletes them.")
        return False
    out(f"In the class at {state['url']} as {state['name']!r} (learner {state['learner_id']}).")
    checked = {quest: n for quest, n in sorted(state["attempts"].items()) if _count(n)}
    out("  Checks reported: " + (", ".join(f"{quest} x{n}" for quest, n in checked.items())
                                 if checked else "none yet (each `tracequest check` reports)"))
    queued = len(pending(home))
    if queued:
        out(f"  Queued: {_results(queued)}; sending now.")
        out("  " + report_line(send_pending(home, timeout=5.0), home))
    else:
        out("  Queued: none.")
    out("  " + _board_line(state))
    refused = rejected(home)
    if refused:
        out(f"  Refused by the board: {_results(len(refused))}, kept in {rejected_dir(home)}:")
        for path in refused[-5:]:
            out(f"    {_described(path)}: {refusal_of(path)}")
    out(f"  Your own row on the board: {learner_link(state)} (it holds your key; keep it to yourself)")
    return True


def _described(path: Path) -> str:
    try:
        record = json.loads(path.read_text())
        return f"quest {record['quest']} {record['verdict']}, attempt {record['attempt']}"
    except (OSError, ValueError, KeyError, TypeError):
        return path.name


def _board_line(state: dict) -> str:
    """What the board shows of this learner, or why it cannot say."""
    url = state["url"]
    try:
        response = requests.get(f"{url}/api/board", headers={"Authorization": f"Bearer {state['token']}"},
                                timeout=3.0, allow_redirects=False)
    except requests.RequestException:
        return f"The board at {url} does not answer now; your results wait in the queue."
    if response.status_code in (401, 403):
        return (f"The board does not know you any more ({error_of(response)}); "
                "ask your instructor, or leave and join again.")
    try:
        data = response.json()
        row = next(row for row in data["learners"] if row.get("id") == state["learner_id"])
        cells = row["cells"]
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return f"The board answers (HTTP {response.status_code}) but shows no row for you yet."
    passed = sorted(quest for quest, cell in cells.items() if cell.get("state") == "passed")
    failed = sorted(quest for quest, cell in cells.items() if cell.get("state") == "failed")
    return ("The board shows you: " + f"{len(passed)} passed" + (f" ({', '.join(passed)})" if passed else "")
            + f", {len(failed)} not passed yet" + (f" ({', '.join(failed)})" if failed else "") + ".")


def leave(home: Path, out=print) -> bool:
    """Stop reporting to the class: delete class.json and the queue, saying how many results are dropped."""
    home = Path(home)
    try:
        state = load_class(home)
    except ClassError:
        state = {"url": "(unreadable class file)"}
    queued, refused = len(pending(home)), len(rejected(home))
    if state is None and not queue_dir(home).exists():
        out("Not in a class; nothing to leave.")
        return False
    if state is not None:
        out(f"Left the class at {state['url']}: `tracequest check` no longer reports to it.")
    else:
        out("Not in a class; deleting the queue an earlier class left.")
    if queued or refused:
        dropped = [f"{_results(queued)} not sent yet"] if queued else []
        dropped += [f"{_results(refused)} the board refused"] if refused else []
        out(f"  Dropped {' and '.join(dropped)}.")
    (home / CLASS_FILE).unlink(missing_ok=True)
    shutil.rmtree(queue_dir(home), ignore_errors=True)
    return True
