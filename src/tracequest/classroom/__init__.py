"""Instructor mode: a live class board for a workshop, fed by the learners' own quest checks.

``records`` is the one small record a learner's ``tracequest check`` sends per
quest (and its validation, shared by both sides).

The board: ``server`` runs it (waitress, in-process or until Ctrl-C) and is
what the CLI and the tests start; ``app`` is its Flask app (every endpoint);
``auth`` the tokens, callers, rate limits and refusals the app checks with;
``events`` the live event streams on waitress. ``store`` keeps the class,
learners and records in SQLite, with its schema in ``schema``, what the board
shows computed in ``board_view``, and the GitHub Classroom roster CSV read in
``roster``.

The learner's side: ``client`` is the commands (join once, then every check
reports; status, leave), over ``outbox``: the class file, the queue of records
on disk and the sending of it.

May import: ``tracequest.quests`` (quest ids, results), ``tracequest.lab.home``,
``tracequest.traces.timefmt``, ``tracequest.host`` and ``tracequest.errors``;
never the CLI, which wires the board to ``tracequest check``.
"""
