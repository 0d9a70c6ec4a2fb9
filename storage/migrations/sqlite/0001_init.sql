-- 0001: the first schema.
-- traces holds one row of promoted scalar columns per call, so listings and
-- summaries are index scans over small rows; the heavy JSON documents live in
-- trace_bodies and are read only by get(). runs is a rollup the writer keeps,
-- one row per session, so sessions() never aggregates the whole traces table
-- and turn numbers are assigned from one place.

CREATE TABLE traces (
    id                 INTEGER PRIMARY KEY,
    uid                TEXT    NOT NULL UNIQUE,  -- minted by the proxy: replay is idempotent
    ts                 REAL    NOT NULL,         -- epoch seconds, call start
    provider           TEXT,
    host               TEXT,
    endpoint           TEXT,
    api                TEXT,
    model              TEXT,
    requested_model    TEXT,
    status             INTEGER,
    outcome            TEXT    NOT NULL,
    error              TEXT,
    streamed           INTEGER NOT NULL DEFAULT 0,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    total_tokens       INTEGER,
    cached_tokens      INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens   INTEGER,
    usage_source       TEXT    NOT NULL DEFAULT 'none',
    cost_usd           REAL,
    price_source       TEXT,
    latency_ms         REAL,
    ttft_ms            REAL,
    session_hint       TEXT,
    route              TEXT,
    route_label        TEXT,
    reclaimable_tokens INTEGER,
    reclaimable_usd    REAL,
    components         TEXT    NOT NULL DEFAULT '{}',
    called_tools       TEXT    NOT NULL DEFAULT '[]',
    session_id         TEXT,
    turn               INTEGER
);
CREATE INDEX traces_ts ON traces (ts);
CREATE INDEX traces_model ON traces (model, provider);
CREATE INDEX traces_session ON traces (session_id, turn);
CREATE INDEX traces_route ON traces (route) WHERE route IS NOT NULL;

CREATE TABLE trace_bodies (
    trace_id        INTEGER PRIMARY KEY REFERENCES traces (id) ON DELETE CASCADE,
    request         TEXT,
    response        TEXT,
    usage_raw       TEXT,
    request_headers TEXT,
    detail          TEXT,
    analysis        TEXT
);

CREATE TABLE runs (
    session_id          TEXT    PRIMARY KEY,
    turns               INTEGER NOT NULL,
    started             REAL    NOT NULL,
    last                REAL    NOT NULL,
    tokens              INTEGER NOT NULL DEFAULT 0,
    cost_usd            REAL    NOT NULL DEFAULT 0,
    provider            TEXT,
    first_prompt_tokens INTEGER,
    last_prompt_tokens  INTEGER
);
CREATE INDEX runs_last ON runs (last);
CREATE INDEX runs_turns_last ON runs (turns, last);
