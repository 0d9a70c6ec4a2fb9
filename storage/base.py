"""The store contract every backend implements.

A store holds traces (see `storage.trace.Trace`) and answers the queries the API
serves. Every query returns plain JSON-ready dicts and lists, never driver rows.
Backends implement the small set of abstract primitives below (one SQL statement
each, per dialect); the shaping that is the same for every backend (local-day
folding, projections) lives here so both backends give identical answers.

Lifecycle: `await store.open()` (the writer also applies migrations; a read-only
store only checks that the schema exists), then queries, then `await store.close()`.
`close()` is idempotent.
"""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from .summaries import fold_daily, reclaimable_from_totals
from .trace import Trace

DAY = 86400.0


class StoreError(RuntimeError):
    """A store could not be opened or used (bad URL, unreachable server, no schema)."""


class BaseStore(abc.ABC):
    backend: str = "abstract"

    def __init__(self, *, readonly: bool = False) -> None:
        self.readonly = readonly

    # ---- lifecycle -------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect. A writable store applies pending migrations first."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection. Safe to call twice, or without `open`."""

    async def __aenter__(self) -> BaseStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- writes ----------------------------------------------------------------
    async def record(self, trace: Trace) -> int:
        """Insert one trace; return its id (see `record_many`)."""
        ids = await self.record_many([trace])
        return ids[0]

    @abc.abstractmethod
    async def record_many(self, traces: Sequence[Trace]) -> list[int]:
        """Insert traces atomically, in order, resolving each one's run and turn.

        Returns the id of every trace, in input order. A trace whose `uid` is
        already stored is not inserted again (replay is idempotent); the existing
        row's id is returned for it.
        """

    @abc.abstractmethod
    async def prune(self, before_ts: float, *, bodies_only: bool = False, batch: int = 500) -> int:
        """Delete one batch of at most `batch` traces older than `before_ts` (or, with
        `bodies_only`, only their request/response bodies, keeping the metrics); return
        how many went. Callers loop until 0, so no statement holds locks for long.

        Run rollups are repaired in the same transaction (tokens, cost and start of
        what remains; a run with nothing left is removed; turn numbering goes on).
        The per-template tool ledger keeps its lifetime counts.
        """

    # ---- reads -----------------------------------------------------------------
    @abc.abstractmethod
    async def count(self) -> int:
        """Number of stored traces."""

    @abc.abstractmethod
    async def recent(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        """Up to `limit` traces, newest first (descending id), without bodies.

        `before` pages: only traces whose id is lower than it. Empty list when none.
        """

    @abc.abstractmethod
    async def get(self, trace_id: int) -> dict[str, Any] | None:
        """One trace with its bodies (`request`, `response`, `usage_raw`, `detail`,
        `analysis`, `request_headers`), or None when there is no such id."""

    async def daily_summary(self, days: int = 30, tz: str | None = None) -> list[dict[str, Any]]:
        """One entry per calendar day in `tz` (IANA name; default the local zone),
        oldest first, exactly `days` entries ending today, days without calls
        included with zeros: `{day, calls, tokens, prompt_tokens, completion_tokens,
        cost_usd, unpriced_calls}`."""
        zone = ZoneInfo(tz) if tz else None
        now = dt.datetime.now(zone).astimezone(zone)
        first_day = now.date() - dt.timedelta(days=days - 1)
        start = dt.datetime.combine(first_day, dt.time(), tzinfo=now.tzinfo)
        # Buckets are 15 minutes wide, so every real zone offset folds exactly.
        rows = await self._quarter_hour_buckets(start.timestamp())
        return fold_daily(rows, first_day, days, zone)

    @abc.abstractmethod
    async def _quarter_hour_buckets(self, since_ts: float) -> list[tuple]:
        """Rows `(bucket, calls, tokens, prompt, completion, cost, unpriced)` where
        bucket = floor(ts / 900), for traces with ts >= since_ts."""

    @abc.abstractmethod
    async def model_summary(self) -> list[dict[str, Any]]:
        """Per (model, provider): `{model, provider, calls, prompt_tokens,
        completion_tokens, cached_tokens, tokens, cost_usd, unpriced_calls}`, most
        expensive first (then most calls, then model name)."""

    @abc.abstractmethod
    async def sessions(self, limit: int = 50, min_turns: int = 2) -> list[dict[str, Any]]:
        """Runs with at least `min_turns` turns, most recently active first:
        `{session_id, turns, started, last, tokens, cost_usd, models, provider,
        first_prompt_tokens, last_prompt_tokens}`."""

    @abc.abstractmethod
    async def session(self, session_id: str) -> dict[str, Any] | None:
        """A run's summary (as in `sessions`, `turns` being the count) plus
        `calls`: every call of the run in turn order, each with `{id, ts, turn,
        model, prompt_tokens, completion_tokens, total_tokens, cached_tokens,
        cost_usd, latency_ms, ttft_ms, outcome, components}`. None when the run
        is unknown."""

    @abc.abstractmethod
    async def routes(self, limit: int = 15) -> list[dict[str, Any]]:
        """Per prompt template, most expensive first: `{route, label, calls,
        cost_usd, tokens, avg_prompt_tokens, cache_hit_ratio, models, first_seen,
        last_seen}`."""

    async def reclaimable_summary(self) -> dict[str, Any]:
        """What could be cut, in dollars, over every stored trace: `{calls,
        cost_usd, reclaimable_usd, pct, unpriced_calls, by_source: {duplicates,
        caching, unused_tools}, actions: [{action, calls, save_usd}] (most dollars
        first), unused_tools_pending, projectable, monthly_reclaimable_usd,
        span_seconds, active_days}`. See `summaries.reclaimable_from_totals`."""
        totals = await self._reclaimable_totals()
        return reclaimable_from_totals(totals, await self._unused_tools(), now=time.time())

    @abc.abstractmethod
    async def _reclaimable_totals(self) -> dict[str, Any]:
        """One aggregate row: `{calls, cost_usd, reclaimable_usd, unpriced_calls,
        first_ts, last_ts, active_days, dup_usd, dup_calls, cache_usd, cache_calls}`
        (active_days counted in UTC days)."""

    @abc.abstractmethod
    async def _unused_tools(self) -> list[tuple]:
        """Ledger rows of tools never called: `(route, tool, label, shipped, tokens,
        residual_usd)`, most expensive first (then route, tool)."""
