-- The class board's first schema: one class, its learners, their records, and one summary
-- row per learner and quest that the board reads instead of every record.
-- Applied by tracequest.classroom.store inside one transaction; PRAGMA user_version then says 1.

CREATE TABLE class (                      -- exactly one row, made on the board's first start
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    code                  TEXT NOT NULL,  -- what learners type to join: TRACE-7Q4K
    instructor_token_hash TEXT NOT NULL,  -- SHA-256 hex of the instructor token; never the token
    created_at            TEXT NOT NULL,  -- RFC 3339 UTC
    started_ns            INTEGER NOT NULL, -- the mystery race's clock starts here (reset restarts it)
    closed                INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE learners (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- join or import order
    id              TEXT NOT NULL UNIQUE,               -- the learner_id their records carry
    name            TEXT NOT NULL,
    github_username TEXT NOT NULL DEFAULT '',
    github_id       TEXT NOT NULL DEFAULT '',
    token_hash      TEXT UNIQUE,          -- SHA-256 hex of the learner's token; NULL for a roster
                                          -- entry no join has claimed yet
    joined_at       TEXT,                 -- NULL until joined
    removed         INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE records (                    -- one row per record, exactly as the learner sent it
    attempt_id   TEXT PRIMARY KEY,        -- the idempotency key: a record sent twice is stored once
    learner_id   TEXT NOT NULL REFERENCES learners (id),
    quest        TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    property     TEXT NOT NULL,
    hint         TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    duration_s   REAL NOT NULL,
    tool_version TEXT NOT NULL,
    at           TEXT NOT NULL,
    at_ns        INTEGER NOT NULL,        -- `at` parsed
    received_at  TEXT NOT NULL,           -- the board's clock when it arrived
    received_ns  INTEGER NOT NULL
);
CREATE INDEX records_by_learner ON records (learner_id);

CREATE TABLE cells (                      -- one learner's state in one quest, updated with each record
    learner_id      TEXT NOT NULL REFERENCES learners (id),
    quest           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    passed_ns       INTEGER,              -- earliest pass (record time, never later than its arrival)
    latest_attempt  INTEGER NOT NULL,     -- the latest record by (attempt, at): its verdict,
    latest_at_ns    INTEGER NOT NULL,     -- failing property and hint
    latest_verdict  TEXT NOT NULL,
    latest_property TEXT NOT NULL,
    latest_hint     TEXT NOT NULL,
    last_ns         INTEGER NOT NULL,     -- newest record time: when the learner was last seen
    PRIMARY KEY (learner_id, quest)
);
