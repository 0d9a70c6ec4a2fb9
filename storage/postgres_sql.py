"""SQL of the PostgreSQL backend (storage/postgres.py), one constant per statement.

Batches are written with one statement per table: `INSERT ... SELECT FROM unnest(...)`
with one array argument per column. Rollup upserts are generated from the table
definitions in storage/rollups.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import ledger, rollups, rows
from .trace import BODY_FIELDS, JSON_SCALAR_FIELDS

RUN_NAMES = ("session_id", "turns", "started", "last", "tokens", "cost_usd", "provider")
RUN_NAMES += ("first_prompt_tokens", "last_prompt_tokens")
RUN_COLUMNS = ", ".join(RUN_NAMES)
JSON = set(JSON_SCALAR_FIELDS)  # sent as text, cast to jsonb
TYPES = {"packed": "bytea", "status": "int4", "streamed": "bool", "turn": "int4", "turns": "int4"}
TYPES |= {"trace_id": "int8"}
TYPES |= {c: "int8" for c in (*rows.INSERT_COLUMNS, *RUN_NAMES) if c.endswith("tokens")}
FLOATS = ("ts", "cost_usd", "latency_ms", "ttft_ms", "reclaimable_usd", "started", "last")
FLOATS += ("reclaim_dup_usd", "reclaim_cache_usd", "residual_usd", "first_seen", "last_seen")
TYPES |= dict.fromkeys(FLOATS, "float8")  # every other column is text
TYPES |= dict.fromkeys(("shipped", "called", "tokens"), "int8")
for _t in rollups.TABLES:  # rollup sums: counts are int8, dollars float8
    TYPES |= {c: ("float8" if c.endswith("usd") else "int8") for c in _t.sums}
TYPES |= {"bucket": "int8"}


def bulk_insert(table: str, columns: Sequence[str], tail: str = "") -> str:
    """INSERT ... SELECT FROM unnest($1::type[], ...): a whole batch in one statement,
    one array argument per column, rows kept in order."""
    names = ", ".join(columns)
    arrays = ", ".join(f"${i}::{TYPES.get(c, 'text')}[]" for i, c in enumerate(columns, 1))
    values = ", ".join(f"u.{c}::jsonb" if c in JSON else f"u.{c}" for c in columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {values} FROM unnest({arrays})"
        f" WITH ORDINALITY AS u({names}, ord) ORDER BY u.ord {tail}"
    )


LIST = ", ".join(rows.LIST_COLUMNS)
RECENT = f"SELECT {LIST} FROM traces WHERE id < coalesce($2, {2**63 - 1}) ORDER BY id DESC LIMIT $1"
GET = (
    f"SELECT t.{', t.'.join(rows.LIST_COLUMNS)}, b.{', b.'.join(BODY_FIELDS)}, b.packed"
    " FROM traces t"
    " LEFT JOIN trace_bodies b ON b.trace_id = t.id WHERE t.id = $1"
)
# Sorting the distinct keys before locking gives every writer the same lock order.
LOCK_RUNS = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(s, 0) AS k"
    " FROM unnest($1::text[]) AS s) AS keys ORDER BY k"
)
LEDGER_ADD = "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)"
IDS_BY_UID = "SELECT uid, id FROM traces WHERE uid = ANY($1::text[])"
TURNS = "SELECT session_id, turns, last FROM runs WHERE session_id = ANY($1::text[])"
# Candidates for run continuity: the most recent few calls per fingerprint, so a
# request repeated thousands of times does not drag every copy back.
_EARLIER_BY = """SELECT conv_fp, reply_fp, session_id, ts, route, outcome FROM (
    SELECT conv_fp, reply_fp, session_id, ts, route, outcome,
           row_number() OVER (PARTITION BY {col} ORDER BY ts DESC) AS rn
    FROM traces WHERE {col} = ANY($1::text[])) AS c WHERE rn <= 8"""
EARLIER = _EARLIER_BY.format(col="conv_fp") + "\nUNION ALL\n" + _EARLIER_BY.format(col="reply_fp")
NEXT_IDS = "SELECT nextval(pg_get_serial_sequence('traces', 'id')) FROM generate_series(1, $1)"
# The same rollup semantics as the SQLite backend's _UPSERT_RUN.
UPSERT_RUNS = bulk_insert("runs", RUN_NAMES, """
ON CONFLICT (session_id) DO UPDATE SET
    turns = excluded.turns,
    started = least(runs.started, excluded.started),
    last = greatest(runs.last, excluded.last),
    tokens = runs.tokens + excluded.tokens,
    cost_usd = runs.cost_usd + excluded.cost_usd,
    provider = coalesce(runs.provider, excluded.provider),
    last_prompt_tokens = excluded.last_prompt_tokens
""")  # fmt: skip
UPSERT_TOOLS = bulk_insert("route_tools", ledger.COLUMNS, """
ON CONFLICT (route, tool) DO UPDATE SET
    label = coalesce(excluded.label, route_tools.label),
    shipped = route_tools.shipped + excluded.shipped,
    called = route_tools.called + excluded.called,
    tokens = route_tools.tokens + excluded.tokens,
    residual_usd = route_tools.residual_usd + excluded.residual_usd,
    first_seen = least(route_tools.first_seen, excluded.first_seen),
    last_seen = greatest(route_tools.last_seen, excluded.last_seen)
""")  # fmt: skip
OLDEST = "SELECT id FROM traces WHERE ts < $1 ORDER BY ts, id LIMIT $2"
PRUNE_TRACES = f"DELETE FROM traces WHERE id IN ({OLDEST}) RETURNING session_id"
PRUNE_BODIES = """DELETE FROM trace_bodies WHERE trace_id IN (
    SELECT b.trace_id FROM trace_bodies b JOIN traces t ON t.id = b.trace_id
    WHERE t.ts < $1 ORDER BY t.ts LIMIT $2)"""
REPAIR_RUNS = """UPDATE runs SET
    tokens = (SELECT coalesce(sum(total_tokens), 0) FROM traces t
              WHERE t.session_id = runs.session_id),
    cost_usd = (SELECT coalesce(sum(cost_usd), 0) FROM traces t
                WHERE t.session_id = runs.session_id),
    started = coalesce((SELECT min(ts) FROM traces t WHERE t.session_id = runs.session_id),
                       started),
    first_prompt_tokens = (SELECT prompt_tokens FROM traces t
                           WHERE t.session_id = runs.session_id ORDER BY turn, id LIMIT 1)
WHERE session_id = ANY($1::text[])"""
DROP_EMPTY_RUNS = """DELETE FROM runs WHERE session_id = ANY($1::text[])
    AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.session_id = runs.session_id)"""
RUN_SELECT = (
    f"SELECT {RUN_COLUMNS}, (SELECT array_agg(m.model) FROM run_models m"
    " WHERE m.session_id = runs.session_id) AS models FROM runs"
)
SESSIONS = RUN_SELECT + ' WHERE turns >= $1 ORDER BY last DESC, session_id COLLATE "C" LIMIT $2'
SESSION = RUN_SELECT + " WHERE session_id = $1"
TURN_ROWS = """SELECT id, ts, turn, model, prompt_tokens, completion_tokens, total_tokens,
cached_tokens, cost_usd, latency_ms, ttft_ms, outcome, components
FROM traces WHERE session_id = $1 ORDER BY turn, id"""
UNPRICED = "count(*) FILTER (WHERE cost_usd IS NULL AND outcome = 'ok')"
COST = "round(coalesce(sum(cost_usd), 0)::numeric, 6)::float8"
BUCKETS = """
SELECT bucket, sum(calls)::bigint, sum(total_tokens)::bigint, sum(prompt_tokens)::bigint,
       sum(completion_tokens)::bigint, sum(cost_usd), sum(unpriced_calls)::bigint
FROM rollup_buckets WHERE bucket >= $1 GROUP BY bucket ORDER BY bucket
"""
COUNT = "SELECT coalesce(sum(calls), 0)::bigint FROM rollup_models"
# COLLATE "C" and NULLS FIRST order text exactly as SQLite's BINARY collation does.
MODELS = """
SELECT nullif(model, '') AS model, nullif(provider, '') AS provider, calls,
       prompt_tokens, completion_tokens, cached_tokens, total_tokens AS tokens,
       round(cost_usd::numeric, 6)::float8 AS cost_usd, unpriced_calls
FROM rollup_models WHERE calls > 0
ORDER BY round(cost_usd::numeric, 6) DESC, calls DESC,
         nullif(model, '') COLLATE "C" NULLS FIRST, nullif(provider, '') COLLATE "C" NULLS FIRST
"""
ROUTES = """
SELECT route, max(label COLLATE "C") AS label, sum(calls)::bigint AS calls,
       round(sum(cost_usd)::numeric, 6)::float8 AS cost_usd, sum(total_tokens)::bigint AS tokens,
       sum(prompt_tokens)::bigint AS prompt, sum(prompt_calls)::bigint AS prompt_calls,
       sum(cached_tokens)::bigint AS cached, array_agg(model) AS models,
       min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM rollup_routes GROUP BY route
ORDER BY round(sum(cost_usd)::numeric, 6) DESC, sum(calls) DESC, route COLLATE "C" LIMIT $1
"""
TOTALS = """
SELECT sum(calls)::bigint AS calls, sum(cost_usd) AS cost_usd,
       sum(reclaimable_usd) AS reclaimable_usd, sum(unpriced_calls)::bigint AS unpriced_calls,
       sum(dup_usd) AS dup_usd, sum(dup_calls)::bigint AS dup_calls,
       sum(cache_usd) AS cache_usd, sum(cache_calls)::bigint AS cache_calls,
       (SELECT min(ts) FROM traces) AS first_ts, (SELECT max(ts) FROM traces) AS last_ts,
       (SELECT count(DISTINCT bucket / 96) FROM rollup_buckets) AS active_days
FROM rollup_models
"""
UNUSED_TOOLS = """
SELECT route, tool, label, shipped, tokens, residual_usd FROM route_tools
WHERE called = 0 ORDER BY residual_usd DESC, route COLLATE "C", tool COLLATE "C"
"""


def upsert_rollup(table: rollups.Table) -> str:
    """Add a delta row (negative when pruning) to a rollup row, creating it if new."""
    sets = [f"{c} = {table.name}.{c} + excluded.{c}" for c in table.sums]
    if "label" in table.extra:
        sets += [
            f"label = coalesce(excluded.label, {table.name}.label)",
            f"first_seen = least({table.name}.first_seen, excluded.first_seen)",
            f"last_seen = greatest({table.name}.last_seen, excluded.last_seen)",
        ]
    tail = f"ON CONFLICT ({', '.join(table.keys)}) DO UPDATE SET {', '.join(sets)}"
    return bulk_insert(table.name, table.columns, tail)


UPSERT_ROLLUP = {t: upsert_rollup(t) for t in rollups.TABLES}
DROP_EMPTY_ROLLUPS = [f"DELETE FROM {t.name} WHERE calls <= 0" for t in rollups.TABLES]
PRUNED_ROWS = f"SELECT {', '.join(rollups.SOURCE_COLUMNS)} FROM traces WHERE id IN ({OLDEST})"
ROUTE_FIRST_SEEN = """UPDATE rollup_routes SET first_seen = coalesce(
    (SELECT min(ts) FROM traces t WHERE t.route = rollup_routes.route
     AND coalesce(t.model, '') = rollup_routes.model), first_seen)
WHERE route = ANY($1::text[])"""
ADD_RUN_MODELS = bulk_insert("run_models", ("session_id", "model"), "ON CONFLICT DO NOTHING")
DROP_RUN_MODELS = """DELETE FROM run_models WHERE session_id = ANY($1::text[]) AND NOT EXISTS (
    SELECT 1 FROM traces t WHERE t.session_id = run_models.session_id
    AND t.model = run_models.model)"""
# Turns follow start times: renumber a run when a call arrived out of order.
RENUMBER = """UPDATE traces t SET turn = r.rn FROM (
    SELECT id, row_number() OVER (ORDER BY ts, id) AS rn FROM traces WHERE session_id = $1
) AS r WHERE t.id = r.id AND t.turn <> r.rn"""
RUN_ENDS = """UPDATE runs SET
    first_prompt_tokens = (SELECT prompt_tokens FROM traces t
                           WHERE t.session_id = runs.session_id ORDER BY turn LIMIT 1),
    last_prompt_tokens = (SELECT prompt_tokens FROM traces t
                          WHERE t.session_id = runs.session_id ORDER BY turn DESC LIMIT 1)
WHERE session_id = $1"""
