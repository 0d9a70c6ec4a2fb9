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

from . import ledger, migrate, rollups, rows
from . import postgres_sql as sql
from .base import BaseStore, StoreError
from .runs import Earlier, lookup_keys, plan_runs, resolve_sessions, run_models
from .summaries import route_dict
from .trace import Trace

CONNECT_TIMEOUT = 5.0
MIGRATION_LOCK = 0x6C6C6D70726F66  # "llmprof": one key, whatever the schema
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")  # a JSON "\u0000" not itself escaped
_CONNECT_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


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
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if is_json and ("\\u0000" in value or "NaN" in value or "Infinity" in value):
        value = _NUL_ESCAPE.sub(r"\1\\ufffd", value)
        value = rows.dumps(json.loads(value, parse_constant=lambda _: None))
    return value


def _columns(values: list[tuple], names: Sequence[str]) -> list[list[Any]]:
    """Row tuples to one list per column: the arguments of an unnest() insert."""
    out = []
    for name, col in zip(names, zip(*values, strict=True), strict=True):
        if sql.TYPES.get(name, "text") != "text":  # numbers and booleans need no cleaning
            out.append(list(col))
        else:
            is_json = name in sql.JSON
            out.append([_clean(v, is_json) if isinstance(v, str) else v for v in col])
    return out


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
        # Custom plans always: asyncpg prepares every statement, and after five runs
        # PostgreSQL may switch to a generic plan, which for `uid = ANY($1)` guesses a
        # big array and scans the whole traces table (measured: a batch's lookups went
        # from 2 to 60 us per trace, and grow with the table).
        settings = {"application_name": "llmprof", "plan_cache_mode": "force_custom_plan"}
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
            for name, statements in migrate.migrations("postgres"):
                if name not in done:
                    await con.execute(statements)
                    await con.execute(sql.LEDGER_ADD, name, time.time())

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
            known = dict(await con.fetch(sql.IDS_BY_UID, [t.uid for t in batch]))
            fresh = [t for t in batch if t.uid not in known]
            if fresh:
                earlier = [Earlier(*r) for r in await con.fetch(sql.EARLIER, lookup_keys(fresh))]
                session_ids = resolve_sessions(fresh, earlier)
                sids = sorted(set(session_ids))
                await con.execute(sql.LOCK_RUNS, sids)
                # A concurrent writer replaying the same traces may have stored some
                # while we waited for the lock: those are not inserted again.
                known.update(await con.fetch(sql.IDS_BY_UID, [t.uid for t in fresh]))
                keep = [i for i, t in enumerate(fresh) if t.uid not in known]
                fresh = [fresh[i] for i in keep]
                session_ids = [session_ids[i] for i in keep]
            if fresh:
                existing = {r[0]: (r[1], r[2]) for r in await con.fetch(sql.TURNS, sids)}
                assigned, deltas, reorder = plan_runs(fresh, session_ids, existing)
                pairs = zip(fresh, assigned, strict=True)
                values = [rows.insert_values(t, sid, turn) for t, (sid, turn) in pairs]
                # Binary COPY with ids drawn up front: a third of the time of an INSERT
                # of unnest()ed arrays. No uid can collide: this transaction holds the
                # lock of every run it writes and checked the uids under it (the same
                # uid under another run fails the batch, which the writer spools).
                ids = sorted(r[0] for r in await con.fetch(sql.NEXT_IDS, len(fresh)))
                columns = _columns(values, rows.INSERT_COLUMNS)
                await con.copy_records_to_table(
                    "traces",
                    records=list(zip(ids, *columns, strict=True)),
                    columns=("id", *rows.INSERT_COLUMNS),
                    schema_name=self.schema,
                )
                known.update(zip((t.uid for t in fresh), ids, strict=True))
                packed = [(i, rows.packed_body(t)) for i, t in zip(ids, fresh, strict=True)]
                bodies = [(i, p) for i, p in packed if p is not None]
                if bodies:
                    await con.copy_records_to_table(
                        "trace_bodies",
                        records=bodies,
                        columns=("trace_id", "packed"),
                        schema_name=self.schema,
                    )
                runs = [tuple(getattr(d, c) for c in sql.RUN_NAMES) for d in deltas]
                await con.execute(sql.UPSERT_RUNS, *_columns(runs, sql.RUN_NAMES))
                if tools := ledger.ledger_rows(fresh):
                    await con.execute(sql.UPSERT_TOOLS, *_columns(tools, ledger.COLUMNS))
                await self._apply_rollups(con, rollups.deltas(fresh))
                if used := run_models(fresh, session_ids):
                    await con.execute(sql.ADD_RUN_MODELS, *_columns(used, ("session_id", "model")))
                for sid in reorder:
                    await con.execute(sql.RENUMBER, sid)
                    await con.execute(sql.RUN_ENDS, sid)
        return [known[t.uid] for t in traces]

    async def prune(self, before_ts: float, *, bodies_only: bool = False, batch: int = 500) -> int:
        if self.readonly:
            raise StoreError("this store was opened read-only")
        async with self.pool.acquire() as con, con.transaction():
            if bodies_only:
                status = await con.execute(sql.PRUNE_BODIES, before_ts, batch)
                return int(status.split()[-1])
            pruned = [dict(r) for r in await con.fetch(sql.PRUNED_ROWS, before_ts, batch)]
            gone = await con.fetch(sql.PRUNE_TRACES, before_ts, batch)
            await self._apply_rollups(con, rollups.deltas(pruned, sign=-1))
            if routes := sorted({r["route"] for r in pruned if r["route"]}):
                await con.execute(sql.ROUTE_FIRST_SEEN, routes)
            sids = sorted({r[0] for r in gone if r[0] is not None})
            if sids:
                await con.execute(sql.LOCK_RUNS, sids)  # no writer numbers a turn meanwhile
                await con.execute(sql.REPAIR_RUNS, sids)
                await con.execute(sql.DROP_EMPTY_RUNS, sids)
                await con.execute(sql.DROP_RUN_MODELS, sids)
            return len(gone)

    async def _apply_rollups(self, con: Any, deltas: dict[rollups.Table, list[tuple]]) -> None:
        for table, values in deltas.items():
            if values:
                await con.execute(sql.UPSERT_ROLLUP[table], *_columns(values, table.columns))
        if any(v and v[0][len(t.columns) - len(t.sums)] < 0 for t, v in deltas.items()):
            for statement in sql.DROP_EMPTY_ROLLUPS:  # rows a prune emptied
                await con.execute(statement)

    # ---- reads -----------------------------------------------------------------
    async def count(self) -> int:
        return int(await self.pool.fetchval(sql.COUNT))

    async def recent(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        return [rows.trace_dict(r) for r in await self.pool.fetch(sql.RECENT, limit, before)]

    async def get(self, trace_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(sql.GET, trace_id)
        return None if row is None else rows.with_bodies(rows.trace_dict(row), row)

    async def _quarter_hour_buckets(self, since_ts: float) -> list[tuple]:
        return [tuple(r) for r in await self.pool.fetch(sql.BUCKETS, int(since_ts // 900))]

    async def model_summary(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(sql.MODELS)]

    async def sessions(self, limit: int = 50, min_turns: int = 2) -> list[dict[str, Any]]:
        return [_run_dict(r) for r in await self.pool.fetch(sql.SESSIONS, min_turns, limit)]

    async def session(self, session_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(sql.SESSION, session_id)
        if row is None:
            return None
        run = _run_dict(row)
        run["calls"] = [
            {**dict(r), "components": rows.loads(r["components"]) or {}}
            for r in await self.pool.fetch(sql.TURN_ROWS, session_id)
        ]
        return run

    async def routes(self, limit: int = 15) -> list[dict[str, Any]]:
        return [
            route_dict(dict(r), list(r["models"] or []))
            for r in await self.pool.fetch(sql.ROUTES, limit)
        ]

    async def _reclaimable_totals(self) -> dict[str, Any]:
        return dict(await self.pool.fetchrow(sql.TOTALS))

    async def _unused_tools(self) -> list[tuple]:
        return [tuple(r) for r in await self.pool.fetch(sql.UNUSED_TOOLS)]


def _run_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["cost_usd"] = round(d["cost_usd"] or 0.0, 6)
    d["models"] = sorted(d["models"] or [])
    return d
