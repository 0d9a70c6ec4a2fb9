-- 0004: rollups the writer keeps (storage/rollups.py), so summaries read hundreds of
-- rows instead of aggregating every trace: per model (all time), per quarter-hour
-- (any time zone folds quarter-hours into its days), per template and model, and
-- the models each run used. Back-filled here from the traces already stored.

CREATE TABLE rollup_models (
    model             TEXT    NOT NULL,  -- '' when the call had none
    provider          TEXT    NOT NULL,
    calls             INTEGER NOT NULL,
    unpriced_calls    INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    total_tokens      INTEGER NOT NULL,
    cost_usd          REAL    NOT NULL,
    reclaimable_usd   REAL    NOT NULL,
    dup_usd           REAL    NOT NULL,
    dup_calls         INTEGER NOT NULL,
    cache_usd         REAL    NOT NULL,
    cache_calls       INTEGER NOT NULL,
    PRIMARY KEY (model, provider)
);

CREATE TABLE rollup_buckets (
    bucket            INTEGER NOT NULL,  -- floor(ts / 900)
    calls             INTEGER NOT NULL,
    unpriced_calls    INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens      INTEGER NOT NULL,
    cost_usd          REAL    NOT NULL,
    PRIMARY KEY (bucket)
);

CREATE TABLE rollup_routes (
    route         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    label         TEXT,
    first_seen    REAL    NOT NULL,
    last_seen     REAL    NOT NULL,
    calls         INTEGER NOT NULL,
    cost_usd      REAL    NOT NULL,
    total_tokens  INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    prompt_calls  INTEGER NOT NULL,  -- calls with a prompt count, for the average
    cached_tokens INTEGER NOT NULL,
    PRIMARY KEY (route, model)
);

-- prune() recomputes a template's first_seen from what is left; the summaries no
-- longer group traces by model or template, so those indexes only slowed writes.
CREATE INDEX traces_route_ts ON traces (route, ts) WHERE route IS NOT NULL;
DROP INDEX traces_model;
DROP INDEX traces_route;

INSERT INTO rollup_models
SELECT coalesce(model, ''), coalesce(provider, ''), count(*),
       sum(CASE WHEN cost_usd IS NULL AND outcome = 'ok' THEN 1 ELSE 0 END),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(cached_tokens), 0), coalesce(sum(total_tokens), 0),
       coalesce(sum(cost_usd), 0), coalesce(sum(reclaimable_usd), 0),
       coalesce(sum(reclaim_dup_usd), 0), sum(CASE WHEN reclaim_dup_usd > 0 THEN 1 ELSE 0 END),
       coalesce(sum(reclaim_cache_usd), 0), sum(CASE WHEN reclaim_cache_usd > 0 THEN 1 ELSE 0 END)
FROM traces GROUP BY 1, 2;

INSERT INTO rollup_buckets
SELECT CAST(ts / 900 AS INTEGER), count(*),
       sum(CASE WHEN cost_usd IS NULL AND outcome = 'ok' THEN 1 ELSE 0 END),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(total_tokens), 0), coalesce(sum(cost_usd), 0)
FROM traces GROUP BY 1;

INSERT INTO rollup_routes
SELECT route, coalesce(model, ''), max(route_label), min(ts), max(ts), count(*),
       coalesce(sum(cost_usd), 0), coalesce(sum(total_tokens), 0),
       coalesce(sum(prompt_tokens), 0), count(prompt_tokens), coalesce(sum(cached_tokens), 0)
FROM traces WHERE route IS NOT NULL GROUP BY 1, 2;

CREATE TABLE run_models (
    session_id TEXT NOT NULL,
    model      TEXT NOT NULL,
    PRIMARY KEY (session_id, model)
);

INSERT INTO run_models
SELECT DISTINCT session_id, model FROM traces WHERE session_id IS NOT NULL AND model IS NOT NULL;
