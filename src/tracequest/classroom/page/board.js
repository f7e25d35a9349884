// The class board's page. It signs in once from the link's fragment (#instructor=TOKEN or
// #learner=TOKEN: a fragment never reaches the server or its logs), clears the fragment,
// then reads /api/board with the HttpOnly cookie and refetches it on every update event
// from /api/events. Everything a learner typed (names) or sent (properties, hints) goes
// into the page as text (textContent), never as markup.
"use strict";

(function () {
  const HEADERS = {"X-Requested-With": "tracequest"};
  const POLL_MS = 10000;          // without a live stream, read the board this often
  const LIVE_RETRY_MS = 30000;    // and try the live stream again after this long

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  async function signInFromFragment() {
    const match = /^#(instructor|learner)=([A-Za-z0-9_-]{20,200})$/.exec(window.location.hash);
    if (!match) {
      return;
    }
    // Off the address bar and out of the history before anything else happens.
    history.replaceState(null, "", window.location.pathname + window.location.search);
    const response = await fetch("/api/session", {
      method: "POST",
      credentials: "same-origin",
      headers: Object.assign({"Content-Type": "application/json"}, HEADERS),
      body: JSON.stringify({token: match[2]}),
    });
    if (!response.ok) {
      setStatus("That link does not sign in to this board; it may be from another class.");
    }
  }

  function duration(seconds) {
    const total = Math.round(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    if (h) {
      return h + "h " + pad(m) + "m " + pad(s) + "s";
    }
    return m ? m + "m " + pad(s) + "s" : s + "s";
  }

  function cellNode(cell) {
    let td;
    if (cell.state === "passed") {
      td = el("td", cell.attempts > 1 ? "\u2713 " + cell.attempts : "\u2713", "passed");
      td.title = "passed (" + cell.attempts + (cell.attempts === 1 ? " check)" : " checks)");
    } else if (cell.state === "failed") {
      td = el("td", "\u2717 " + cell.attempts, "failed");
      td.title = "failing after " + cell.attempts + (cell.attempts === 1 ? " check" : " checks")
        + (cell.property ? ": " + cell.property + (cell.hint ? " - " + cell.hint : "") : "");
    } else {
      td = el("td", "\u2013", "none");
      td.title = "not tried yet";
    }
    return td;
  }

  function renderGrid(data) {
    const head = [el("th", "Learner", "name")];
    for (const quest of data.quests) {
      const th = el("th", quest.id);
      th.title = quest.title;
      head.push(th);
    }
    $("grid-head").replaceChildren(...head);
    const rows = [];
    for (const learner of data.learners) {
      const tr = el("tr");
      const name = el("td", learner.name, "name");
      if (learner.idle) {
        name.classList.add("idle");
      }
      if (learner.joined === false) {
        name.title = "on the roster, not joined yet";
      }
      tr.append(name);
      for (const quest of data.quests) {
        tr.append(cellNode(learner.cells[quest.id] || {state: "none", attempts: 0}));
      }
      rows.push(tr);
    }
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "Nobody has joined yet.", "name");
      td.colSpan = data.quests.length + 1;
      tr.append(td);
      rows.push(tr);
    }
    $("grid-body").replaceChildren(...rows);
  }

  function renderQuests(data) {
    const rows = [];
    for (const quest of data.quests) {
      const counts = data.per_quest[quest.id] || {done: 0, tried: 0, stuck: null};
      const tr = el("tr");
      tr.append(el("td", quest.id + " " + quest.title));
      tr.append(el("td", counts.tried ? counts.done + " of " + counts.tried + " who tried" : "not tried yet", "done"));
      const stuck = el("td");
      if (counts.stuck) {
        stuck.append(el("span", counts.stuck.property, "property"));
        stuck.append(document.createTextNode(" (" + counts.stuck.learners
          + (counts.stuck.learners === 1 ? " learner)" : " learners)")));
        if (counts.stuck.hint) {
          stuck.append(el("span", counts.stuck.hint, "hint"));
        }
      } else {
        stuck.textContent = "\u2013";
      }
      tr.append(stuck);
      rows.push(tr);
    }
    $("quests-body").replaceChildren(...rows);
  }

  function renderRace(data) {
    const items = data.mystery_race.map((entry) => {
      const li = el("li", entry.name + ", " + duration(entry.seconds_since_start) + " after the start");
      li.value = entry.place;
      return li;
    });
    $("race").replaceChildren(...items);
    $("race-empty").hidden = items.length > 0;
  }

  function renderIdle(data, instructor) {
    $("idle-section").hidden = !instructor;
    $("idle-title").textContent = "No check for " + data.idle_minutes + " minutes";
    const items = data.learners.filter((learner) => learner.idle).map((learner) => el("li", learner.name));
    $("idle").replaceChildren(...items);
    $("idle-empty").hidden = items.length > 0;
  }

  function render(data) {
    const instructor = data.viewer && data.viewer.role === "instructor";
    $("signin").hidden = true;
    $("board").hidden = false;
    $("exports").hidden = !instructor;
    $("closed").hidden = !data.class.closed;
    if (instructor) {
      $("title").textContent = "Class " + data.class.code_hint;
      const url = data.class.join_url || window.location.origin;
      $("join-command").textContent = "tracequest class join " + url + " " + data.class.code_hint
        + ' --name "Your Name"';
      $("join").hidden = data.class.closed;
      $("grid-title").textContent = "Learners and quests (" + data.learners.length + ")";
    } else {
      const me = data.learners[0];
      $("title").textContent = me ? "Your progress, " + me.name : "Your progress";
      $("join").hidden = true;
      $("grid-title").textContent = "Your quests";
    }
    renderGrid(data);
    renderQuests(data);
    renderRace(data);
    renderIdle(data, instructor);
  }

  let fetching = false;
  let again = false;
  let stream = null;
  let pollTimer = null;
  let live = false;

  async function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const response = await fetch("/api/board", {credentials: "same-origin", headers: HEADERS});
      if (response.status === 401 || response.status === 403) {
        stopLive();
        $("board").hidden = true;
        $("exports").hidden = true;
        $("signin").hidden = false;
        const answer = await response.json().catch(() => ({}));
        setStatus(answer.error ? "The board says: " + answer.error + "." : "Not signed in.");
        return;
      }
      if (!response.ok) {
        setStatus("The board answered " + response.status + "; trying again shortly.");
        return;
      }
      render(await response.json());
      setStatus((live ? "Live" : "Refreshing every " + POLL_MS / 1000 + " s")
        + "; updated " + new Date().toLocaleTimeString() + ".");
    } catch (error) {
      setStatus("Cannot reach the board; trying again shortly.");
    } finally {
      fetching = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function stopLive() {
    if (stream) {
      stream.close();
      stream = null;
    }
    if (pollTimer) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
    live = false;
  }

  function goLive() {
    stream = new EventSource("/api/events");
    stream.addEventListener("open", () => {
      live = true;
      if (pollTimer) {
        clearInterval(pollTimer);
        pollTimer = null;
      }
    });
    stream.addEventListener("update", refresh);
    stream.addEventListener("error", () => {
      live = false;
      if (stream && stream.readyState === EventSource.CLOSED) {
        // Refused (too many pages open, or the board restarting): read it by polling for a while.
        stream = null;
        if (!pollTimer) {
          pollTimer = setInterval(refresh, POLL_MS);
        }
        setTimeout(() => {
          if (!stream) {
            goLive();
          }
        }, LIVE_RETRY_MS);
      }
    });
  }

  async function start() {
    try {
      await signInFromFragment();
    } catch (error) {
      setStatus("Cannot reach the board to sign in.");
    }
    await refresh();
    if (!$("board").hidden) {
      goLive();
    }
  }

  // A sign-in link opened in a tab that already shows the page changes only the fragment.
  window.addEventListener("hashchange", () => {
    if (/^#(instructor|learner)=/.test(window.location.hash)) {
      stopLive();
      start();
    }
  });

  start();
})();
