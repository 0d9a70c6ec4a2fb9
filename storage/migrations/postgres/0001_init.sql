-- 0001: the first schema, the PostgreSQL twin of migrations/sqlite/0001_init.sql.
-- traces holds one row of promoted scalar columns per call, so listings and
-- summaries are index scans over small rows; the heavy JSON documents live in
-- trace_bodies and are read only by get(). runs is a rollup the writer keeps,
-- one row per session, so sessions() never aggregates the whole traces table
-- and turn numbers are assigned from one place (under an advisory lock per
-- session, so several proxies can write one database). JSON is JSONB so it can
-- be queried in place; token counts are BIGINT to match SQLite's 64-bit INTEGER.

CREATE TABLE traces (
    id                 BIGSERIAL        PRIMARY KEY,
    uid                TEXT             NOT NULL UNIQUE,  -- minted by the proxy: replay is idempotent
    ts                 DOUBLE PRECISION NOT NULL,         -- epoch seconds, call start
    provider           TEXT,
    host               TEXT,
    endpoint           TEXT,
    api                TEXT,
    model              TEXT,
    requested_model    TEXT,
    status             INTEGER,
    outcome            TEXT             NOT NULL,
    error              TEXT,
    streamed           BOOLEAN          NOT NULL DEFAULT FALSE,
    prompt_tokens      BIGINT,
    completion_tokens  BIGINT,
    total_tokens       BIGINT,
    cached_tokens      BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens   BIGINT,
    usage_source       TEXT             NOT NULL DEFAULT 'none',
    cost_usd           DOUBLE PRECISION,
    price_source       TEXT,
    latency_ms         DOUBLE PRECISION,
    ttft_ms            DOUBLE PRECISION,
    session_hint       TEXT,
    route              TEXT,
    route_label        TEXT,
    reclaimable_tokens BIGINT,
    reclaimable_usd    DOUBLE PRECISION,
    components         JSONB            NOT NULL DEFAULT '{}',
    called_tools       JSONB            NOT NULL DEFAULT '[]',
    session_id         TEXT,
    turn               INTEGER
);
CREATE INDEX traces_ts ON traces (ts);
CREATE INDEX traces_model ON traces (model, provider);
CREATE INDEX traces_session ON traces (session_id, turn);
CREATE INDEX traces_route ON traces (route) WHERE route IS NOT NULL;

CREATE TABLE trace_bodies (
    trace_id        BIGINT PRIMARY KEY REFERENCES traces (id) ON DELETE CASCADE,
    request         JSONB,
    response        JSONB,
    usage_raw       JSONB,
    request_headers JSONB,
    detail          JSONB,
    analysis        JSONB
);

CREATE TABLE runs (
    session_id          TEXT             PRIMARY KEY,
    turns               INTEGER          NOT NULL,
    started             DOUBLE PRECISION NOT NULL,
    last                DOUBLE PRECISION NOT NULL,
    tokens              BIGINT           NOT NULL DEFAULT 0,
    cost_usd            DOUBLE PRECISION NOT NULL DEFAULT 0,
    provider            TEXT,
    first_prompt_tokens BIGINT,
    last_prompt_tokens  BIGINT
);
CREATE INDEX runs_last ON runs (last);
CREATE INDEX runs_turns_last ON runs (turns, last);
