-- 0004: rollups the writer keeps (storage/rollups.py), so summaries read hundreds of
-- rows instead of aggregating every trace: per model (all time), per quarter-hour
-- (any time zone folds quarter-hours into its days), per template and model, and
-- the models each run used. Back-filled here from the traces already stored.

CREATE TABLE rollup_models (
    model             TEXT             NOT NULL,  -- '' when the call had none
    provider          TEXT             NOT NULL,
    calls             BIGINT           NOT NULL,
    unpriced_calls    BIGINT           NOT NULL,
    prompt_tokens     BIGINT           NOT NULL,
    completion_tokens BIGINT           NOT NULL,
    cached_tokens     BIGINT           NOT NULL,
    total_tokens      BIGINT           NOT NULL,
    cost_usd          DOUBLE PRECISION NOT NULL,
    reclaimable_usd   DOUBLE PRECISION NOT NULL,
    dup_usd           DOUBLE PRECISION NOT NULL,
    dup_calls         BIGINT           NOT NULL,
    cache_usd         DOUBLE PRECISION NOT NULL,
    cache_calls       BIGINT           NOT NULL,
    PRIMARY KEY (model, provider)
);

CREATE TABLE rollup_buckets (
    bucket            BIGINT           NOT NULL,  -- floor(ts / 900)
    calls             BIGINT           NOT NULL,
    unpriced_calls    BIGINT           NOT NULL,
    prompt_tokens     BIGINT           NOT NULL,
    completion_tokens BIGINT           NOT NULL,
    total_tokens      BIGINT           NOT NULL,
    cost_usd          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket)
);

CREATE TABLE rollup_routes (
    route         TEXT             NOT NULL,
    model         TEXT             NOT NULL,
    label         TEXT,
    first_seen    DOUBLE PRECISION NOT NULL,
    last_seen     DOUBLE PRECISION NOT NULL,
    calls         BIGINT           NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    total_tokens  BIGINT           NOT NULL,
    prompt_tokens BIGINT           NOT NULL,
    prompt_calls  BIGINT           NOT NULL,  -- calls with a prompt count, for the average
    cached_tokens BIGINT           NOT NULL,
    PRIMARY KEY (route, model)
);

-- prune() recomputes a template's first_seen from what is left; the summaries no
-- longer group traces by model or template, so those indexes only slowed writes.
CREATE INDEX traces_route_ts ON traces (route, ts) WHERE route IS NOT NULL;
DROP INDEX traces_model;
DROP INDEX traces_route;

INSERT INTO rollup_models
SELECT coalesce(model, ''), coalesce(provider, ''), count(*),
       count(*) FILTER (WHERE cost_usd IS NULL AND outcome = 'ok'),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(cached_tokens), 0), coalesce(sum(total_tokens), 0),
       coalesce(sum(cost_usd), 0), coalesce(sum(reclaimable_usd), 0),
       coalesce(sum(reclaim_dup_usd), 0), count(*) FILTER (WHERE reclaim_dup_usd > 0),
       coalesce(sum(reclaim_cache_usd), 0), count(*) FILTER (WHERE reclaim_cache_usd > 0)
FROM traces GROUP BY 1, 2;

INSERT INTO rollup_buckets
SELECT floor(ts / 900)::bigint, count(*),
       count(*) FILTER (WHERE cost_usd IS NULL AND outcome = 'ok'),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(total_tokens), 0), coalesce(sum(cost_usd), 0)
FROM traces GROUP BY 1;

INSERT INTO rollup_routes
SELECT route, coalesce(model, ''), max(route_label COLLATE "C"), min(ts), max(ts), count(*),
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
