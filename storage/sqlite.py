"""SQLite backend on aiosqlite: one file, WAL, one writer connection.

The writer (the proxy) owns the only writable connection and batches inserts,
one transaction per batch. Readers (the API) open the file with `mode=ro`, so
they can never write, and WAL lets them read while the writer commits.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from . import ledger, migrate, rollups
from . import sqlite_sql as sql
from .base import BaseStore, StoreError
from .rows import insert_values, loads, packed_body, trace_dict, with_bodies
from .runs import Earlier, lookup_keys, plan_runs, resolve_sessions, run_models
from .summaries import route_dict
from .trace import Trace

BUSY_TIMEOUT_MS = 5000


def _chunks(items: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    # SQLite caps the number of bound parameters per statement.
    return [items[i : i + size] for i in range(0, len(items), size)]


class SQLiteStore(BaseStore):
    backend = "sqlite"

    def __init__(self, path: str, *, readonly: bool = False) -> None:
        super().__init__(readonly=readonly)
        self.path = path
        self._db: aiosqlite.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, readonly={self.readonly})"

    # ---- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            if self.readonly:
                if not os.path.exists(self.path):
                    raise StoreError(
                        f"no llmprof database at {self.path}: start the proxy first "
                        "(make run) or point LLMPROF_DB_URL at an existing one"
                    )
                db = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
            else:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open SQLite database {self.path}: {e}") from e
        db.row_factory = aiosqlite.Row
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db = db
        try:
            if self.readonly:
                await self._check_schema()
            else:
                # Each of these takes the write lock when it changes something, so
                # only change what is not set yet: a proxy reconnecting while another
                # process holds the lock must open at once (and spool, not wait).
                if (await db.execute_fetchall("PRAGMA page_count"))[0][0] == 0:
                    # before the first table exists, so pruning can hand pages back
                    await db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                mode = (await db.execute_fetchall("PRAGMA journal_mode"))[0][0]
                if str(mode).lower() != "wal":
                    await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = NORMAL")
                await db.execute("PRAGMA foreign_keys = ON")
                await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open: call `await store.open()` first")
        return self._db

    async def _migrate(self) -> None:
        # An up-to-date file needs no write lock to open: a proxy (re)connecting while
        # another process holds the lock must not wait on it just to find nothing to do.
        try:
            rows = await self.db.execute_fetchall("SELECT name FROM schema_migrations")
            if {name for name, _ in migrate.migrations("sqlite")} <= {r[0] for r in rows}:
                return
        except sqlite3.OperationalError:  # no ledger yet: a new file
            pass
        # BEGIN IMMEDIATE takes the write lock, so two proxies starting at once
        # on one file apply each migration exactly once.
        await self.db.execute(migrate.CREATE_LEDGER)
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            rows = await self.db.execute_fetchall("SELECT name FROM schema_migrations")
            done = {r[0] for r in rows}
            for name, script in migrate.migrations("sqlite"):
                if name in done:
                    continue
                for statement in _statements(script):
                    await self.db.execute(statement)
                await self.db.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, time.time()),
                )
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise

    async def _check_schema(self) -> None:
        try:
            rows = await self.db.execute_fetchall("SELECT name FROM schema_migrations")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path} is not an llmprof database ({e})") from e
        if migrate.latest("sqlite") not in {r[0] for r in rows}:
            raise StoreError(
                f"{self.path} has an older llmprof schema: start the proxy once to migrate it"
            )

    # ---- writes ----------------------------------------------------------------
    async def record_many(self, traces: Sequence[Trace]) -> list[int]:
        if self.readonly:
            raise StoreError("this store was opened read-only")
        if not traces:
            return []
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            uids = [t.uid for t in traces]
            known = await self._ids_by_uid(uids)
            fresh, seen = [], set(known)
            for t in traces:
                if t.uid not in seen:
                    fresh.append(t)
                    seen.add(t.uid)
            if fresh:
                earlier = await self._earlier(lookup_keys(fresh))
                session_ids = resolve_sessions(fresh, earlier)
                sids = sorted(set(session_ids))
                existing: dict[str, tuple[int, float]] = {}
                for part in _chunks(sids):
                    marks = ", ".join("?" for _ in part)
                    for row in await db.execute_fetchall(sql.TURNS.format(marks=marks), part):
                        existing[row[0]] = (row[1], row[2])
                assigned, deltas, reorder = plan_runs(fresh, session_ids, existing)
                pairs = zip(fresh, assigned, strict=True)
                await db.executemany(sql.INSERT, [insert_values(t, s, n) for t, (s, n) in pairs])
                new_ids = await self._ids_by_uid([t.uid for t in fresh])
                known.update(new_ids)
                await db.executemany(
                    sql.INSERT_BODY,
                    [(new_ids[t.uid], packed) for t in fresh if (packed := packed_body(t))],
                )
                await db.executemany(
                    sql.UPSERT_RUN,
                    [
                        (
                            d.session_id,
                            d.turns,
                            d.started,
                            d.last,
                            d.tokens,
                            d.cost_usd,
                            d.provider,
                            d.first_prompt_tokens,
                            d.last_prompt_tokens,
                        )
                        for d in deltas
                    ],
                )
                if tools := ledger.ledger_rows(fresh):
                    await db.executemany(sql.UPSERT_TOOLS, tools)
                await self._apply_rollups(rollups.deltas(fresh))
                await db.executemany(sql.ADD_RUN_MODELS, run_models(fresh, session_ids))
                for sid in reorder:
                    await db.execute(sql.RENUMBER, (sid,))
                    await db.execute(sql.RUN_ENDS, (sid,))
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return [known[u] for u in uids]

    async def prune(self, before_ts: float, *, bodies_only: bool = False, batch: int = 500) -> int:
        if self.readonly:
            raise StoreError("this store was opened read-only")
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            if bodies_only:
                cur = await db.execute(sql.PRUNE_BODIES, (before_ts, batch))
            else:
                rows = await db.execute_fetchall(sql.PRUNE_SESSIONS, (before_ts, batch))
                sids = [r[0] for r in rows]
                gone = await db.execute_fetchall(
                    sql.PRUNED_ROWS.format(oldest=sql.OLDEST), (before_ts, batch)
                )
                cur = await db.execute(sql.PRUNE_TRACES, (before_ts, batch))
                await self._apply_rollups(rollups.deltas([dict(r) for r in gone], sign=-1))
                routes = sorted({r["route"] for r in gone if r["route"]})
                for part in _chunks(routes):
                    marks = ", ".join("?" for _ in part)
                    await db.execute(sql.ROUTE_FIRST_SEEN.format(marks=marks), part)
                for part in _chunks(sids):
                    marks = ", ".join("?" for _ in part)
                    await db.execute(sql.REPAIR_RUNS.format(marks=marks), part)
                    await db.execute(sql.DROP_EMPTY_RUNS.format(marks=marks), part)
                    await db.execute(sql.DROP_RUN_MODELS.format(marks=marks), part)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        if cur.rowcount:
            await db.execute("PRAGMA incremental_vacuum(2000)")  # give pages back to the disk
        return cur.rowcount

    async def _apply_rollups(self, deltas: dict[rollups.Table, list[tuple]]) -> None:
        for table, rows in deltas.items():
            if rows:
                await self.db.executemany(sql.UPSERT_ROLLUP[table], rows)
        if any(rows and rows[0][len(t.columns) - len(t.sums)] < 0 for t, rows in deltas.items()):
            for statement in sql.DROP_EMPTY_ROLLUPS:  # rows a prune emptied
                await self.db.execute(statement)

    async def _earlier(self, keys: Sequence[str]) -> list[Earlier]:
        out = []
        for part in _chunks(list(keys), 250):
            marks = ", ".join("?" for _ in part)
            rows = await self.db.execute_fetchall(sql.EARLIER.format(marks=marks), (*part, *part))
            out.extend(Earlier(*r) for r in rows)
        return out

    async def _ids_by_uid(self, uids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in _chunks(list(uids)):
            marks = ", ".join("?" for _ in part)
            rows = await self.db.execute_fetchall(
                f"SELECT uid, id FROM traces WHERE uid IN ({marks})", part
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    # ---- reads -----------------------------------------------------------------
    async def count(self) -> int:
        rows = await self.db.execute_fetchall(sql.COUNT)
        return int(rows[0][0])

    async def recent(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        if before is None:
            query, args = f"SELECT {sql.LIST} FROM traces ORDER BY id DESC LIMIT ?", (limit,)
        else:
            query = f"SELECT {sql.LIST} FROM traces WHERE id < ? ORDER BY id DESC LIMIT ?"
            args = (before, limit)
        return [trace_dict(r) for r in await self.db.execute_fetchall(query, args)]

    async def get(self, trace_id: int) -> dict[str, Any] | None:
        rows = await self.db.execute_fetchall(
            f"SELECT {sql.LIST} FROM traces WHERE id = ?", (trace_id,)
        )
        if not rows:
            return None
        body = await self.db.execute_fetchall(sql.GET_BODY, (trace_id,))
        return with_bodies(trace_dict(rows[0]), body[0] if body else None)

    async def _quarter_hour_buckets(self, since_ts: float) -> list[tuple]:
        rows = await self.db.execute_fetchall(sql.BUCKETS, (int(since_ts // 900),))
        return [tuple(r) for r in rows]

    async def model_summary(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.db.execute_fetchall(sql.MODEL_SUMMARY)]

    async def sessions(self, limit: int = 50, min_turns: int = 2) -> list[dict[str, Any]]:
        rows = await self.db.execute_fetchall(
            f"SELECT {sql.RUN_COLUMNS} FROM runs WHERE turns >= ? "
            "ORDER BY last DESC, session_id LIMIT ?",
            (min_turns, limit),
        )
        runs = [dict(r) for r in rows]
        await self._attach_models(runs)
        return runs

    async def session(self, session_id: str) -> dict[str, Any] | None:
        rows = await self.db.execute_fetchall(
            f"SELECT {sql.RUN_COLUMNS} FROM runs WHERE session_id = ?", (session_id,)
        )
        if not rows:
            return None
        run = dict(rows[0])
        await self._attach_models([run])
        turns = await self.db.execute_fetchall(
            f"SELECT {sql.TURN_COLUMNS} FROM traces WHERE session_id = ? ORDER BY turn, id",
            (session_id,),
        )
        run["calls"] = [_turn_dict(r) for r in turns]
        return run

    async def _attach_models(self, runs: list[dict[str, Any]]) -> None:
        by_id = {r["session_id"]: r for r in runs}
        for r in runs:
            r["cost_usd"] = round(r["cost_usd"] or 0.0, 6)
            r["models"] = []
        for part in _chunks(list(by_id)):
            marks = ", ".join("?" for _ in part)
            rows = await self.db.execute_fetchall(
                f"SELECT session_id, model FROM run_models WHERE session_id IN ({marks}) "
                "ORDER BY session_id, model",
                part,
            )
            for sid, model in rows:
                by_id[sid]["models"].append(model)

    async def routes(self, limit: int = 15) -> list[dict[str, Any]]:
        rows = await self.db.execute_fetchall(sql.ROUTES, (limit,))
        return [route_dict(dict(r), (r["models"] or "").split(",")) for r in rows]

    async def _reclaimable_totals(self) -> dict[str, Any]:
        totals = dict((await self.db.execute_fetchall(sql.TOTALS))[0])
        totals.update(dict((await self.db.execute_fetchall(sql.SPAN))[0]))
        totals["active_days"] = (await self.db.execute_fetchall(sql.ACTIVE_DAYS))[0][0]
        return totals

    async def _unused_tools(self) -> list[tuple]:
        return [tuple(r) for r in await self.db.execute_fetchall(sql.UNUSED_TOOLS)]


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (our files keep `;` out of literals)."""
    lines = [ln for ln in sql.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _turn_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["components"] = loads(d["components"]) or {}
    return d
