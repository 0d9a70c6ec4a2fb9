-- 0002: what each call could save, by source, and the per-template tool ledger.
-- reclaimable_summary() sums these promoted columns and reads route_tools (one
-- row per template and tool, kept by the writer) instead of decoding analysis
-- trees, so it stays a cheap aggregate over small rows at any size.

ALTER TABLE traces ADD COLUMN reclaim_dup_usd DOUBLE PRECISION;
ALTER TABLE traces ADD COLUMN reclaim_cache_usd DOUBLE PRECISION;

CREATE TABLE route_tools (
    route        TEXT             NOT NULL,
    tool         TEXT             NOT NULL,
    label        TEXT,
    shipped      BIGINT           NOT NULL,  -- calls that sent this tool's schema
    called       BIGINT           NOT NULL,  -- of those, calls where it was called
    tokens       BIGINT           NOT NULL,  -- schema tokens summed over those calls
    residual_usd DOUBLE PRECISION NOT NULL,  -- their cost, net of any caching saving claimed
    first_seen   DOUBLE PRECISION NOT NULL,
    last_seen    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (route, tool)
);
CREATE INDEX route_tools_unused ON route_tools (called, shipped);
