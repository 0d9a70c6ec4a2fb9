"""PostgreSQL backend on an asyncpg pool: several proxies may write one database.

Each `record_many` is one transaction holding an advisory lock on every run it
touches, so concurrent writers number turns one after the other; migrations run
under one constant advisory lock. A read-only store connects with
`default_transaction_read_only`. `?schema=NAME` in the URL (llmprof's own, not
passed to the driver) puts the tables in that schema, created by the writer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from . import ledger, migrate, rows
from .base import BaseStore, StoreError
from .runs import Earlier, lookup_keys, plan_runs, resolve_sessions
from .trace import BODY_FIELDS, JSON_SCALAR_FIELDS, Trace

CONNECT_TIMEOUT = 5.0
MIGRATION_LOCK = 0x6C6C6D70726F66  # "llmprof": one key, whatever the schema
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")  # a JSON "\u0000" not itself escaped
_CONNECT_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)
_RUN_NAMES = ("session_id", "turns", "started", "last", "tokens", "cost_usd", "provider")
_RUN_NAMES += ("first_prompt_tokens", "last_prompt_tokens")
_RUN_COLUMNS = ", ".join(_RUN_NAMES)
_JSON = {*JSON_SCALAR_FIELDS, *BODY_FIELDS}  # sent as text, cast to jsonb
_TYPES = {"status": "int4", "streamed": "bool", "turn": "int4", "turns": "int4", "trace_id": "int8"}
_TYPES |= {c: "int8" for c in (*rows.INSERT_COLUMNS, *_RUN_NAMES) if c.endswith("tokens")}
_FLOATS = ("ts", "cost_usd", "latency_ms", "ttft_ms", "reclaimable_usd", "started", "last")
_FLOATS += ("reclaim_dup_usd", "reclaim_cache_usd", "residual_usd", "first_seen", "last_seen")
_TYPES |= dict.fromkeys(_FLOATS, "float8")  # every other column is text
_TYPES |= dict.fromkeys(("shipped", "called", "tokens"), "int8")


def _bulk_insert(table: str, columns: Sequence[str], tail: str = "") -> str:
    """INSERT ... SELECT FROM unnest($1::type[], ...): a whole batch in one statement,
    one array argument per column, rows kept in order."""
    names = ", ".join(columns)
    arrays = ", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(columns, 1))
    values = ", ".join(f"u.{c}::jsonb" if c in _JSON else f"u.{c}" for c in columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {values} FROM unnest({arrays})"
        f" WITH ORDINALITY AS u({names}, ord) ORDER BY u.ord {tail}"
    )


_LIST = ", ".join(rows.LIST_COLUMNS)
_RECENT = (
    f"SELECT {_LIST} FROM traces WHERE id < coalesce($2, {2**63 - 1}) ORDER BY id DESC LIMIT $1"
)
_GET = (
    f"SELECT t.{', t.'.join(rows.LIST_COLUMNS)}, b.{', b.'.join(BODY_FIELDS)} FROM traces t"
    " LEFT JOIN trace_bodies b ON b.trace_id = t.id WHERE t.id = $1"
)
# Sorting the distinct keys before locking gives every writer the same lock order.
_LOCK_RUNS = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(s, 0) AS k"
    " FROM unnest($1::text[]) AS s) AS keys ORDER BY k"
)
_LEDGER_ADD = "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)"
_IDS_BY_UID = "SELECT uid, id FROM traces WHERE uid = ANY($1::text[])"
_TURNS = "SELECT session_id, turns FROM runs WHERE session_id = ANY($1::text[])"
_EARLIER = """SELECT conv_fp, reply_fp, session_id, ts, route, outcome FROM traces
WHERE conv_fp = ANY($1::text[]) OR reply_fp = ANY($1::text[])"""
_ON_UID = "ON CONFLICT (uid) DO NOTHING RETURNING uid, id"  # a concurrent replay
_INSERT = _bulk_insert("traces", rows.INSERT_COLUMNS, _ON_UID)
_INSERT_BODY = _bulk_insert("trace_bodies", ("trace_id", *BODY_FIELDS))
# The same rollup semantics as the SQLite backend's _UPSERT_RUN.
_UPSERT_RUNS = _bulk_insert("runs", _RUN_NAMES, """
ON CONFLICT (session_id) DO UPDATE SET
    turns = excluded.turns,
    started = least(runs.started, excluded.started),
    last = greatest(runs.last, excluded.last),
    tokens = runs.tokens + excluded.tokens,
    cost_usd = runs.cost_usd + excluded.cost_usd,
    provider = coalesce(runs.provider, excluded.provider),
    last_prompt_tokens = excluded.last_prompt_tokens
""")  # fmt: skip
_UPSERT_TOOLS = _bulk_insert("route_tools", ledger.COLUMNS, """
ON CONFLICT (route, tool) DO UPDATE SET
    label = coalesce(excluded.label, route_tools.label),
    shipped = route_tools.shipped + excluded.shipped,
    called = route_tools.called + excluded.called,
    tokens = route_tools.tokens + excluded.tokens,
    residual_usd = route_tools.residual_usd + excluded.residual_usd,
    first_seen = least(route_tools.first_seen, excluded.first_seen),
    last_seen = greatest(route_tools.last_seen, excluded.last_seen)
""")  # fmt: skip
_OLDEST = "SELECT id FROM traces WHERE ts < $1 ORDER BY ts, id LIMIT $2"
_PRUNE_TRACES = f"DELETE FROM traces WHERE id IN ({_OLDEST}) RETURNING session_id"
_PRUNE_BODIES = """DELETE FROM trace_bodies WHERE trace_id IN (
    SELECT b.trace_id FROM trace_bodies b JOIN traces t ON t.id = b.trace_id
    WHERE t.ts < $1 ORDER BY t.ts LIMIT $2)"""
_REPAIR_RUNS = """UPDATE runs SET
    tokens = (SELECT coalesce(sum(total_tokens), 0) FROM traces t
              WHERE t.session_id = runs.session_id),
    cost_usd = (SELECT coalesce(sum(cost_usd), 0) FROM traces t
                WHERE t.session_id = runs.session_id),
    started = coalesce((SELECT min(ts) FROM traces t WHERE t.session_id = runs.session_id),
                       started),
    first_prompt_tokens = (SELECT prompt_tokens FROM traces t
                           WHERE t.session_id = runs.session_id ORDER BY turn, id LIMIT 1)
WHERE session_id = ANY($1::text[])"""
_DROP_EMPTY_RUNS = """DELETE FROM runs WHERE session_id = ANY($1::text[])
    AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.session_id = runs.session_id)"""
_RUN_SELECT = (
    f"SELECT {_RUN_COLUMNS}, (SELECT array_agg(DISTINCT t.model) FROM traces t"
    " WHERE t.session_id = runs.session_id AND t.model IS NOT NULL) AS models FROM runs"
)
_SESSIONS = _RUN_SELECT + ' WHERE turns >= $1 ORDER BY last DESC, session_id COLLATE "C" LIMIT $2'
_SESSION = _RUN_SELECT + " WHERE session_id = $1"
_TURN_ROWS = """SELECT id, ts, turn, model, prompt_tokens, completion_tokens, total_tokens,
cached_tokens, cost_usd, latency_ms, ttft_ms, outcome, components
FROM traces WHERE session_id = $1 ORDER BY turn, id"""
_UNPRICED = "count(*) FILTER (WHERE cost_usd IS NULL AND outcome = 'ok')"
_COST = "round(coalesce(sum(cost_usd), 0)::numeric, 6)::float8"
_BUCKETS = f"""
SELECT floor(ts / 900)::bigint AS b, count(*), sum(total_tokens)::bigint,
       sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cost_usd), {_UNPRICED}
FROM traces WHERE ts >= $1 GROUP BY b ORDER BY b
"""
# COLLATE "C" and NULLS FIRST order text exactly as SQLite's BINARY collation does.
_MODELS = f"""
SELECT model, provider, count(*) AS calls,
       coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
       coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens,
       coalesce(sum(cached_tokens), 0)::bigint AS cached_tokens,
       coalesce(sum(total_tokens), 0)::bigint AS tokens,
       {_COST} AS cost_usd, {_UNPRICED} AS unpriced_calls
FROM traces GROUP BY model, provider
ORDER BY cost_usd DESC, calls DESC, model COLLATE "C" NULLS FIRST, provider COLLATE "C" NULLS FIRST
"""
_ROUTES = f"""
SELECT route, max(route_label COLLATE "C") AS label, count(*) AS calls, {_COST} AS cost_usd,
       coalesce(sum(total_tokens), 0)::bigint AS tokens,
       avg(prompt_tokens)::float8 AS avg_prompt_tokens,
       coalesce(sum(cached_tokens), 0)::bigint AS cached,
       coalesce(sum(prompt_tokens), 0)::bigint AS prompt,
       array_agg(DISTINCT model) FILTER (WHERE model IS NOT NULL) AS models,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM traces WHERE route IS NOT NULL GROUP BY route
ORDER BY cost_usd DESC, calls DESC, route COLLATE "C" LIMIT $1
"""
_TOTALS = f"""
SELECT count(*) AS calls, sum(cost_usd) AS cost_usd, sum(reclaimable_usd) AS reclaimable_usd,
       {_UNPRICED} AS unpriced_calls, min(ts) AS first_ts, max(ts) AS last_ts,
       count(DISTINCT floor(ts / 86400)) AS active_days,
       sum(reclaim_dup_usd) AS dup_usd, count(*) FILTER (WHERE reclaim_dup_usd > 0) AS dup_calls,
       sum(reclaim_cache_usd) AS cache_usd,
       count(*) FILTER (WHERE reclaim_cache_usd > 0) AS cache_calls
FROM traces
"""
_UNUSED_TOOLS = """
SELECT route, tool, label, shipped, tokens, residual_usd FROM route_tools
WHERE called = 0 ORDER BY residual_usd DESC, route COLLATE "C", tool COLLATE "C"
"""


def split_schema(url: str) -> tuple[str, str | None]:
    """`(dsn for asyncpg, schema or None)`: strips llmprof's own `schema=` parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in reversed(query) if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return (url, None) if schema is None else (urlunsplit(parts._replace(query=rest)), schema)


def _clean(value: Any, is_json: bool) -> Any:
    """PostgreSQL text cannot hold NUL, nor jsonb a \\u0000 escape or NaN/Infinity:
    U+FFFD and null stand in, so one odd body never fails (and re-spools) a batch."""
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "\ufffd")
    if is_json and ("\\u0000" in value or "NaN" in value or "Infinity" in value):
        value = _NUL_ESCAPE.sub(r"\1\\ufffd", value)
        value = rows.dumps(json.loads(value, parse_constant=lambda _: None))
    return value


def _columns(values: list[tuple], names: Sequence[str]) -> list[list[Any]]:
    """Row tuples to one list per column: the arguments of an unnest() insert."""
    cols = zip(names, zip(*values, strict=True), strict=True)
    return [[_clean(v, name in _JSON) for v in col] for name, col in cols]


class PostgresStore(BaseStore):
    backend = "postgresql"

    def __init__(self, dsn: str, *, readonly: bool = False) -> None:
        super().__init__(readonly=readonly)
        self._dsn, self.schema = split_schema(dsn)
        if self.schema is not None and not _SCHEMA_NAME.fullmatch(self.schema):
            raise StoreError(f"schema={self.schema!r} is not a plain SQL name (letters, digits, _)")
        self._pool: asyncpg.Pool | None = None
        parts = urlsplit(self._dsn)  # for messages: host and database, never the password
        self.where = (parts.netloc.rpartition("@")[2] or "localhost") + (parts.path or "/")
        self._secrets = {p for p in (parts.password, unquote(parts.password or "")) if p}

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r}, schema={self.schema!r}, readonly={self.readonly})"

    # ---- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        settings = {"application_name": "llmprof"}
        settings |= {"search_path": f'"{self.schema}"'} if self.schema else {}
        settings |= {"default_transaction_read_only": "on"} if self.readonly else {}
        try:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4,
                command_timeout=10, timeout=CONNECT_TIMEOUT, server_settings=settings)  # fmt: skip
        except _CONNECT_ERRORS as e:
            raise StoreError(self._connect_message(e)) from None
        try:
            await (self._check_schema() if self.readonly else self._migrate())
        except BaseException:
            await self.close()
            raise

    def _connect_message(self, e: BaseException) -> str:
        reason = (str(e).splitlines() or [""])[0] or type(e).__name__
        for secret in self._secrets:
            reason = reason.replace(secret, "***")
        db = self.where.rpartition("/")[2]
        if isinstance(e, asyncpg.InvalidCatalogNameError):
            fix = f"database {db!r} does not exist: create it (createdb {db}) or fix its name"
        elif isinstance(e, asyncpg.InvalidAuthorizationSpecificationError):
            fix = f"login refused ({reason}): check the user and password"
        else:
            fix = f"{reason}: check that the server is running, and the host, port and database"
        return f"cannot connect to PostgreSQL at {self.where}: {fix} in LLMPROF_DB_URL"

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("store is not open: call `await store.open()` first")
        return self._pool

    async def _migrate(self) -> None:
        async with self.pool.acquire() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            if self.schema:
                await con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await con.execute(migrate.CREATE_LEDGER)
            done = {r[0] for r in await con.fetch("SELECT name FROM schema_migrations")}
            for name, sql in migrate.migrations("postgres"):
                if name not in done:
                    await con.execute(sql)
                    await con.execute(_LEDGER_ADD, name, time.time())

    async def _check_schema(self) -> None:
        where = f"PostgreSQL {self.where} (schema {self.schema or 'on the search_path'})"
        try:
            done = {r[0] for r in await self.pool.fetch("SELECT name FROM schema_migrations")}
        except asyncpg.UndefinedTableError:
            done = None
        if done is None or migrate.latest("postgres") not in done:
            state = "has no llmprof tables" if done is None else "has an older llmprof schema"
            raise StoreError(f"{where} {state}: start the proxy once with this URL to migrate it")

    # ---- writes ----------------------------------------------------------------
    async def record_many(self, traces: Sequence[Trace]) -> list[int]:
        if self.readonly:
            raise StoreError("this store was opened read-only")
        if not traces:
            return []
        first: dict[str, int] = {}  # a uid twice in one batch is recorded once
        batch = [t for i, t in enumerate(traces) if first.setdefault(t.uid, i) == i]
        async with self.pool.acquire() as con, con.transaction():
            known = dict(await con.fetch(_IDS_BY_UID, [t.uid for t in batch]))
            fresh = [t for t in batch if t.uid not in known]
            if fresh:
                earlier = [Earlier(*r) for r in await con.fetch(_EARLIER, lookup_keys(fresh))]
                session_ids = resolve_sessions(fresh, earlier)
                sids = sorted(set(session_ids))
                await con.execute(_LOCK_RUNS, sids)
                # A concurrent writer replaying the same traces may have stored some
                # while we waited for the lock: those are not inserted again.
                known.update(await con.fetch(_IDS_BY_UID, [t.uid for t in fresh]))
                keep = [i for i, t in enumerate(fresh) if t.uid not in known]
                fresh = [fresh[i] for i in keep]
                session_ids = [session_ids[i] for i in keep]
            if fresh:
                turns = dict(await con.fetch(_TURNS, sids))
                assigned, deltas = plan_runs(fresh, session_ids, turns)
                pairs = zip(fresh, assigned, strict=True)
                values = [rows.insert_values(t, sid, turn) for t, (sid, turn) in pairs]
                inserted = dict(await con.fetch(_INSERT, *_columns(values, rows.INSERT_COLUMNS)))
                if len(inserted) != len(fresh):  # the same uid under another session id
                    raise StoreError("a trace uid was recorded concurrently under another run")
                known.update(inserted)
                bodies = [(inserted[t.uid], *rows.body_values(t)) for t in fresh]
                await con.execute(_INSERT_BODY, *_columns(bodies, ("trace_id", *BODY_FIELDS)))
                runs = [tuple(getattr(d, c) for c in _RUN_NAMES) for d in deltas]
                await con.execute(_UPSERT_RUNS, *_columns(runs, _RUN_NAMES))
                if tools := ledger.ledger_rows(fresh):
                    await con.execute(_UPSERT_TOOLS, *_columns(tools, ledger.COLUMNS))
        return [known[t.uid] for t in traces]

    async def prune(self, before_ts: float, *, bodies_only: bool = False, batch: int = 500) -> int:
        if self.readonly:
            raise StoreError("this store was opened read-only")
        async with self.pool.acquire() as con, con.transaction():
            if bodies_only:
                status = await con.execute(_PRUNE_BODIES, before_ts, batch)
                return int(status.split()[-1])
            gone = await con.fetch(_PRUNE_TRACES, before_ts, batch)
            sids = sorted({r[0] for r in gone if r[0] is not None})
            if sids:
                await con.execute(_LOCK_RUNS, sids)  # no writer numbers a turn meanwhile
                await con.execute(_REPAIR_RUNS, sids)
                await con.execute(_DROP_EMPTY_RUNS, sids)
            return len(gone)

    # ---- reads -----------------------------------------------------------------
    async def count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM traces"))

    async def recent(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        return [rows.trace_dict(r) for r in await self.pool.fetch(_RECENT, limit, before)]

    async def get(self, trace_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(_GET, trace_id)
        return None if row is None else rows.with_bodies(rows.trace_dict(row), row)

    async def _quarter_hour_buckets(self, since_ts: float) -> list[tuple]:
        return [tuple(r) for r in await self.pool.fetch(_BUCKETS, since_ts)]

    async def model_summary(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(_MODELS)]

    async def sessions(self, limit: int = 50, min_turns: int = 2) -> list[dict[str, Any]]:
        return [_run_dict(r) for r in await self.pool.fetch(_SESSIONS, min_turns, limit)]

    async def session(self, session_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(_SESSION, session_id)
        if row is None:
            return None
        run = _run_dict(row)
        run["calls"] = [
            {**dict(r), "components": rows.loads(r["components"]) or {}}
            for r in await self.pool.fetch(_TURN_ROWS, session_id)
        ]
        return run

    async def routes(self, limit: int = 15) -> list[dict[str, Any]]:
        out = []
        for r in await self.pool.fetch(_ROUTES, limit):
            d = dict(r)
            cached, prompt = d.pop("cached"), d.pop("prompt")
            d["cache_hit_ratio"] = round(cached / prompt, 4) if prompt else 0.0
            d["models"] = sorted(d["models"] or [])
            if d["avg_prompt_tokens"] is not None:
                d["avg_prompt_tokens"] = round(d["avg_prompt_tokens"], 1)
            out.append(d)
        return out

    async def _reclaimable_totals(self) -> dict[str, Any]:
        return dict(await self.pool.fetchrow(_TOTALS))

    async def _unused_tools(self) -> list[tuple]:
        return [tuple(r) for r in await self.pool.fetch(_UNUSED_TOOLS)]


def _run_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["cost_usd"] = round(d["cost_usd"] or 0.0, 6)
    d["models"] = sorted(d["models"] or [])
    return d
