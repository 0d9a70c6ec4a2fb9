"""SQL of the SQLite backend (storage/sqlite.py), one constant per statement.

Rollup upserts are generated from the table definitions in storage/rollups.py.
"""

from __future__ import annotations

from . import ledger, rollups
from .rows import INSERT_COLUMNS, LIST_COLUMNS
from .trace import BODY_FIELDS

LIST = ", ".join(LIST_COLUMNS)
INSERT = (
    f"INSERT INTO traces ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
)
INSERT_BODY = "INSERT INTO trace_bodies (trace_id, packed) VALUES (?, ?)"
GET_BODY = f"SELECT {', '.join(BODY_FIELDS)}, packed FROM trace_bodies WHERE trace_id = ?"
UPSERT_RUN = """
INSERT INTO runs (session_id, turns, started, last, tokens, cost_usd, provider,
                  first_prompt_tokens, last_prompt_tokens)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    turns = excluded.turns,
    started = min(runs.started, excluded.started),
    last = max(runs.last, excluded.last),
    tokens = runs.tokens + excluded.tokens,
    cost_usd = runs.cost_usd + excluded.cost_usd,
    provider = coalesce(runs.provider, excluded.provider),
    last_prompt_tokens = excluded.last_prompt_tokens
"""
TOOL_MARKS = ", ".join("?" for _ in ledger.COLUMNS)
UPSERT_TOOLS = f"""
INSERT INTO route_tools ({", ".join(ledger.COLUMNS)}) VALUES ({TOOL_MARKS})
ON CONFLICT (route, tool) DO UPDATE SET
    label = coalesce(excluded.label, route_tools.label),
    shipped = route_tools.shipped + excluded.shipped,
    called = route_tools.called + excluded.called,
    tokens = route_tools.tokens + excluded.tokens,
    residual_usd = route_tools.residual_usd + excluded.residual_usd,
    first_seen = min(route_tools.first_seen, excluded.first_seen),
    last_seen = max(route_tools.last_seen, excluded.last_seen)
"""
OLDEST = "SELECT id FROM traces WHERE ts < ? ORDER BY ts, id LIMIT ?"
PRUNE_SESSIONS = f"SELECT DISTINCT session_id FROM traces WHERE id IN ({OLDEST})"
PRUNE_TRACES = f"DELETE FROM traces WHERE id IN ({OLDEST})"  # bodies go by cascade
PRUNE_BODIES = """DELETE FROM trace_bodies WHERE trace_id IN (
    SELECT b.trace_id FROM trace_bodies b JOIN traces t ON t.id = b.trace_id
    WHERE t.ts < ? ORDER BY t.ts LIMIT ?)"""
REPAIR_RUNS = """UPDATE runs SET
    tokens = (SELECT coalesce(sum(total_tokens), 0) FROM traces t
              WHERE t.session_id = runs.session_id),
    cost_usd = (SELECT coalesce(sum(cost_usd), 0) FROM traces t
                WHERE t.session_id = runs.session_id),
    started = coalesce((SELECT min(ts) FROM traces t WHERE t.session_id = runs.session_id),
                       started),
    first_prompt_tokens = (SELECT prompt_tokens FROM traces t
                           WHERE t.session_id = runs.session_id ORDER BY turn, id LIMIT 1)
WHERE session_id IN ({marks})"""
DROP_EMPTY_RUNS = """DELETE FROM runs WHERE session_id IN ({marks})
    AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.session_id = runs.session_id)"""
RUN_COLUMNS = (
    "session_id, turns, started, last, tokens, cost_usd, provider, "
    "first_prompt_tokens, last_prompt_tokens"
)
TURN_COLUMNS = (
    "id, ts, turn, model, prompt_tokens, completion_tokens, total_tokens, cached_tokens, "
    "cost_usd, latency_ms, ttft_ms, outcome, components"
)


def upsert_rollup(table: rollups.Table) -> str:
    """Add a delta row (negative when pruning) to a rollup row, creating it if new."""
    cols = ", ".join(table.columns)
    sets = [f"{c} = {table.name}.{c} + excluded.{c}" for c in table.sums]
    if "label" in table.extra:
        sets += [
            f"label = coalesce(excluded.label, {table.name}.label)",
            f"first_seen = min({table.name}.first_seen, excluded.first_seen)",
            f"last_seen = max({table.name}.last_seen, excluded.last_seen)",
        ]
    return (
        f"INSERT INTO {table.name} ({cols}) VALUES ({', '.join('?' for _ in table.columns)}) "
        f"ON CONFLICT ({', '.join(table.keys)}) DO UPDATE SET {', '.join(sets)}"
    )


UPSERT_ROLLUP = {t: upsert_rollup(t) for t in rollups.TABLES}
DROP_EMPTY_ROLLUPS = [f"DELETE FROM {t.name} WHERE calls <= 0" for t in rollups.TABLES]
PRUNED_ROWS = f"SELECT {', '.join(rollups.SOURCE_COLUMNS)} FROM traces WHERE id IN ({{oldest}})"
ROUTE_FIRST_SEEN = """UPDATE rollup_routes SET first_seen = coalesce(
    (SELECT min(ts) FROM traces t WHERE t.route = rollup_routes.route
     AND coalesce(t.model, '') = rollup_routes.model), first_seen)
WHERE route IN ({marks})"""

COUNT = "SELECT coalesce(sum(calls), 0) FROM rollup_models"
BUCKETS = """SELECT bucket, sum(calls), sum(total_tokens), sum(prompt_tokens),
       sum(completion_tokens), sum(cost_usd), sum(unpriced_calls)
FROM rollup_buckets WHERE bucket >= ? GROUP BY bucket ORDER BY bucket"""
MODEL_SUMMARY = """SELECT nullif(model, '') AS model, nullif(provider, '') AS provider, calls,
       prompt_tokens, completion_tokens, cached_tokens, total_tokens AS tokens,
       round(cost_usd, 6) AS cost_usd, unpriced_calls
FROM rollup_models WHERE calls > 0
ORDER BY round(cost_usd, 6) DESC, calls DESC, nullif(model, ''), nullif(provider, '')"""
ROUTES = """SELECT route, max(label) AS label, sum(calls) AS calls,
       round(sum(cost_usd), 6) AS cost_usd, sum(total_tokens) AS tokens,
       sum(prompt_tokens) AS prompt, sum(prompt_calls) AS prompt_calls,
       sum(cached_tokens) AS cached, group_concat(nullif(model, '')) AS models,
       min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM rollup_routes GROUP BY route
ORDER BY round(sum(cost_usd), 6) DESC, sum(calls) DESC, route LIMIT ?"""
TOTALS = """SELECT sum(calls) AS calls, sum(cost_usd) AS cost_usd,
       sum(reclaimable_usd) AS reclaimable_usd, sum(unpriced_calls) AS unpriced_calls,
       sum(dup_usd) AS dup_usd, sum(dup_calls) AS dup_calls,
       sum(cache_usd) AS cache_usd, sum(cache_calls) AS cache_calls
FROM rollup_models"""
# Two subqueries: SQLite answers a lone min() or max() from the index, but not both at once.
SPAN = """SELECT (SELECT min(ts) FROM traces) AS first_ts,
       (SELECT max(ts) FROM traces) AS last_ts"""
ACTIVE_DAYS = "SELECT count(DISTINCT bucket / 96) FROM rollup_buckets"
UNUSED_TOOLS = """SELECT route, tool, label, shipped, tokens, residual_usd FROM route_tools
WHERE called = 0 ORDER BY residual_usd DESC, route, tool"""
ADD_RUN_MODELS = "INSERT OR IGNORE INTO run_models (session_id, model) VALUES (?, ?)"
DROP_RUN_MODELS = """DELETE FROM run_models WHERE session_id IN ({marks}) AND NOT EXISTS (
    SELECT 1 FROM traces t WHERE t.session_id = run_models.session_id
    AND t.model = run_models.model)"""
TURNS = "SELECT session_id, turns, last FROM runs WHERE session_id IN ({marks})"
# Turns follow start times: renumber a run when a call arrived out of order.
RENUMBER = """UPDATE traces SET turn = r.rn FROM (
    SELECT id, row_number() OVER (ORDER BY ts, id) AS rn FROM traces WHERE session_id = ?
) AS r WHERE traces.id = r.id AND traces.turn <> r.rn"""
RUN_ENDS = """UPDATE runs SET
    first_prompt_tokens = (SELECT prompt_tokens FROM traces t
                           WHERE t.session_id = runs.session_id ORDER BY turn LIMIT 1),
    last_prompt_tokens = (SELECT prompt_tokens FROM traces t
                          WHERE t.session_id = runs.session_id ORDER BY turn DESC LIMIT 1)
WHERE session_id = ?"""
# Candidates for run continuity: the most recent few calls per fingerprint, so a
# request repeated thousands of times does not drag every copy back.
_EARLIER_BY = """SELECT conv_fp, reply_fp, session_id, ts, route, outcome FROM (
    SELECT conv_fp, reply_fp, session_id, ts, route, outcome,
           row_number() OVER (PARTITION BY {col} ORDER BY ts DESC) AS rn
    FROM traces WHERE {col} IN ({{marks}})) WHERE rn <= 8"""
EARLIER = _EARLIER_BY.format(col="conv_fp") + "\nUNION ALL\n" + _EARLIER_BY.format(col="reply_fp")
