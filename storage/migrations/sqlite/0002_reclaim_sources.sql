-- 0002: what each call could save, by source, and the per-template tool ledger.
-- reclaimable_summary() sums these promoted columns and reads route_tools (one
-- row per template and tool, kept by the writer) instead of decoding analysis
-- trees, so it stays an index-free aggregate over small rows at any size.

ALTER TABLE traces ADD COLUMN reclaim_dup_usd REAL;
ALTER TABLE traces ADD COLUMN reclaim_cache_usd REAL;

CREATE TABLE route_tools (
    route        TEXT    NOT NULL,
    tool         TEXT    NOT NULL,
    label        TEXT,
    shipped      INTEGER NOT NULL,  -- calls that sent this tool's schema
    called       INTEGER NOT NULL,  -- of those, calls where it was called
    tokens       INTEGER NOT NULL,  -- schema tokens summed over those calls
    residual_usd REAL    NOT NULL,  -- their cost, net of any caching saving claimed
    first_seen   REAL    NOT NULL,
    last_seen    REAL    NOT NULL,
    PRIMARY KEY (route, tool)
);
CREATE INDEX route_tools_unused ON route_tools (called, shipped);
