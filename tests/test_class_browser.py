"""The class board's page in a real browser: Playwright driving Debian's Chromium.

The board runs in this process on 127.0.0.1; learners join and report through
its HTTP API, as their checks do. The instructor's link signs in and leaves
the address bar, a new failing check appears on the open page without a
reload, a learner's link shows that learner's row and nobody else's, and a
name made of markup stays text. The instructor's board is saved as a
screenshot (also to /tmp/class-board.png, to look at).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tracequest.classroom.server import start_board
from tracequest.classroom.store import rfc3339_ms
from tracequest.quests.registry import all_quests

SCREENSHOT_COPY = "/tmp/class-board.png"
LIVE_WITHIN_MS = 5000   # the page's fallback polling is every 10 s: faster than that is the event stream
HOSTILE = "<img src=x onerror=alert(1)>"
INJECT = ("test_one_trace_spans_both_services", "the traceparent header is missing: inject() it into the headers.")
REDIS = ("test_a_failed_redis_call_is_recorded_as_an_error",
         "record the exception on the Redis span and set its status.")
QUEST_IDS = [quest.id for quest in all_quests()]


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_playwright() as playwright:
        running = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield running
        running.close()


@pytest.fixture
def board(tmp_path):
    with start_board(tmp_path / "class" / "board.db") as running:
        yield running


class Watched:
    """A page in a fresh browser context (its own cookies), with every dialog and script error it raises."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def all_text(self) -> str:
        """Every text node of the document, hidden ones too, plus its markup."""
        return self.page.evaluate("document.documentElement.textContent") + self.page.content()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def opened(url: str) -> Watched:
        watched = Watched(browser)
        pages.append(watched)
        watched.page.goto(url)
        return watched
    yield opened
    for watched in pages:
        watched.close()


def join(board, name: str) -> tuple[str, str]:
    response = requests.post(f"{board.url}/api/join", json={"code": board.code, "name": name}, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()["learner_id"], response.json()["token"]


def report(board, learner: tuple[str, str], quest: str, verdict: str, attempt: int = 1,
           failing: tuple[str, str] = INJECT, minutes_ago: float = 0) -> None:
    learner_id, token = learner
    passed = verdict == "passed"
    body = {"attempt_id": uuid.uuid4().hex, "learner_id": learner_id, "quest": quest, "verdict": verdict,
            "property": "" if passed else failing[0], "hint": "" if passed else failing[1], "attempt": attempt,
            "duration_s": 4.2, "tool_version": "0.1.0",
            "at": rfc3339_ms(time.time_ns() - int(minutes_ago * 60e9))}
    response = requests.post(f"{board.url}/api/records", json=body, timeout=5,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"stored": 1, "duplicates": 0}, response.text


def row(page, name: str):
    return page.locator("#grid-body tr").filter(has=page.locator("td.name", has_text=name))


def cell(page, name: str, quest: str):
    return row(page, name).locator("td").nth(1 + QUEST_IDS.index(quest))


def test_the_instructor_link_signs_in_leaves_the_address_bar_and_shows_a_new_failure_live(
        board, open_page, tmp_path):
    ada, grace, linus = join(board, "Ada Lovelace"), join(board, "Grace Hopper"), join(board, "Linus Torvalds")
    margaret, alan = join(board, "Margaret Hamilton"), join(board, "Alan Turing")
    for learner in (ada, grace, margaret, alan):
        report(board, learner, "01", "passed")
    report(board, grace, "03", "passed")
    report(board, margaret, "03", "passed")
    report(board, margaret, "04", "passed")
    for learner in (ada, alan):
        report(board, learner, "04", "failed")
        report(board, learner, "04", "failed", attempt=2)
    report(board, linus, "01", "failed", failing=("test_the_eta_service_sends_a_named_trace",
                                                  "every span must carry service.name = eta."), minutes_ago=15)

    instructor = open_page(f"{board.url}/#instructor={board.instructor_token}")
    page = instructor.page
    names = page.locator("#grid-body td.name")
    expect(names).to_have_text(["Ada Lovelace", "Alan Turing", "Grace Hopper", "Linus Torvalds",
                                "Margaret Hamilton"])
    assert page.evaluate("window.location.hash") == ""
    assert "#" not in page.url and board.instructor_token not in page.url
    expect(page.locator("#title")).to_have_text(f"Class {board.code}")
    expect(cell(page, "Ada Lovelace", "04")).to_have_text("\u2717 2")
    expect(cell(page, "Margaret Hamilton", "04")).to_have_text("\u2713")
    expect(page.locator("#race li")).to_have_text([re.compile(r"^Grace Hopper, "),
                                                   re.compile(r"^Margaret Hamilton, ")])
    expect(page.locator("#idle li")).to_have_text(["Linus Torvalds"])
    expect(page.locator("#status")).to_contain_text("Live")   # the event stream is open

    page.evaluate("window.__notReloaded = true")
    expect(cell(page, "Grace Hopper", "05")).to_have_text("\u2013")
    report(board, grace, "05", "failed", failing=REDIS)   # Grace's check, while the page is open
    expect(cell(page, "Grace Hopper", "05")).to_have_text("\u2717 1", timeout=LIVE_WITHIN_MS)
    stuck = page.locator("#quests-body tr").nth(QUEST_IDS.index("05"))
    expect(stuck).to_contain_text(REDIS[0])
    expect(stuck).to_contain_text(REDIS[1])
    assert page.evaluate("window.__notReloaded") is True, "the page reloaded instead of updating"
    expect(page.locator("#quests-body tr").nth(QUEST_IDS.index("04"))).to_contain_text(
        f"{INJECT[0]} (2 learners){INJECT[1]}")

    screenshot = tmp_path / "class-board.png"
    page.screenshot(path=str(screenshot), full_page=True)
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
    assert screenshot.stat().st_size > 10_000
    assert (instructor.dialogs, instructor.errors) == ([], [])


def test_a_learner_link_shows_that_learners_row_and_nobody_elses(board, open_page):
    ada, grace = join(board, "Ada Lovelace"), join(board, "Grace Hopper")
    report(board, ada, "01", "passed")
    report(board, ada, "04", "failed")
    # Grace is in the mystery race, stuck on 04 with her own hint, and idle: half an hour since her checks.
    report(board, grace, "03", "passed", minutes_ago=30)
    report(board, grace, "04", "failed", failing=REDIS, minutes_ago=30)

    # The instructor sees Grace everywhere: were she missing from Ada's view, it would not be by chance.
    instructor = open_page(f"{board.url}/#instructor={board.instructor_token}")
    expect(instructor.page.locator("#grid-body td.name")).to_have_text(["Ada Lovelace", "Grace Hopper"])
    expect(instructor.page.locator("#race li")).to_contain_text(["Grace Hopper"])
    expect(instructor.page.locator("#idle li")).to_have_text(["Grace Hopper"])

    learner = open_page(f"{board.url}/#learner={ada[1]}")
    page = learner.page
    expect(page.locator("#title")).to_have_text("Your progress, Ada Lovelace")
    expect(page.locator("#grid-body td.name")).to_have_text(["Ada Lovelace"])
    expect(cell(page, "Ada Lovelace", "04")).to_have_text("\u2717 1")
    assert page.evaluate("window.location.hash") == "" and ada[1] not in page.url
    expect(page.locator("#exports")).to_be_hidden()
    text = learner.all_text()
    assert "Ada Lovelace" in text
    assert "Grace" not in text and grace[0] not in text, "a learner's page shows another learner"
    assert board.code not in text   # the learner's page shows the code with its end masked
    assert (learner.dialogs, learner.errors) == ([], [])


def test_a_name_made_of_markup_shows_as_text_and_runs_nothing(board, open_page):
    hostile = join(board, HOSTILE)
    report(board, hostile, "03", "passed")
    report(board, hostile, "04", "failed")
    report(board, hostile, "05", "failed", failing=(REDIS[0], "<b>bold</b> <script>alert(2)</script>"))

    for link in (f"{board.url}/#instructor={board.instructor_token}", f"{board.url}/#learner={hostile[1]}"):
        watched = open_page(link)
        page = watched.page
        expect(page.locator("#grid-body td.name")).to_have_text([HOSTILE])
        expect(page.locator("#race li")).to_contain_text([HOSTILE])
        expect(page.locator("#quests-body")).to_contain_text("<b>bold</b> <script>alert(2)</script>")
        page.wait_for_timeout(500)   # time for a broken image's onerror, had one been made
        assert page.locator("img, b").count() == 0, "a name or hint became markup"
        assert page.locator("script").count() == 1   # board.js, nothing more
        assert (watched.dialogs, watched.errors) == ([], [])
    expect(page.locator("#title")).to_have_text(f"Your progress, {HOSTILE}")
