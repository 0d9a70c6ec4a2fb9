"""The BaseStore contract, written once and run on every backend.

Most tests take the `store` fixture (see conftest.py), so each runs on SQLite and
on PostgreSQL. The PostgreSQL-only tests cover what SQLite cannot have: several
writers on one database, and identical answers from both backends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest

import storage
from storage import BaseStore, StoreError, Trace, migrate, open_store
from storage.postgres import PostgresStore, split_schema
from storage.rows import HIDDEN
from storage.sqlite import SQLiteStore
from storage.trace import SCALAR_FIELDS

DAY = 86400
UTC = dt.UTC


def tr(**kw: Any) -> Trace:
    """A typical priced call; keywords override."""
    fields: dict[str, Any] = {
        "provider": "openai",
        "host": "api.openai.com",
        "endpoint": "/v1/chat/completions",
        "api": "chat",
        "model": "gpt-4o",
        "status": 200,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "usage_source": "provider",
        "cost_usd": 0.001,
    }
    fields.update(kw)
    return Trace(**fields)


def utc_midnight(days_ago: int) -> float:
    today = dt.datetime.now(UTC).date() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(today, dt.time(), tzinfo=UTC).timestamp()


def zero_day(day: dt.date) -> dict[str, Any]:
    return {
        "day": day.isoformat(),
        "calls": 0,
        "tokens": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "unpriced_calls": 0,
    }


# ---- writes ----------------------------------------------------------------------


async def test_record_and_record_many_return_ids_in_input_order(store: BaseStore) -> None:
    first = await store.record(tr(uid="u0"))
    ids = await store.record_many([tr(uid=f"u{i}") for i in (1, 2, 3)])
    assert all(type(i) is int for i in (first, *ids))
    assert [first, *ids] == sorted({first, *ids})  # distinct and increasing in input order
    assert await store.count() == 4
    listed = await store.recent()
    assert [(r["id"], r["uid"]) for r in listed] == [
        (ids[2], "u3"),
        (ids[1], "u2"),
        (ids[0], "u1"),
        (first, "u0"),
    ]
    assert await store.record_many([]) == []
    assert await store.count() == 4


async def test_replay_by_uid_is_idempotent(store: BaseStore) -> None:
    a, b = tr(uid="a", session_hint="s"), tr(uid="b", session_hint="s")
    ids = await store.record_many([a, b, a])  # a uid twice in one batch
    assert ids[0] == ids[2] and ids[0] != ids[1]
    assert await store.count() == 2
    again = await store.record_many([tr(uid="c", session_hint="s"), b, a])  # a later replay
    assert again[1:] == [ids[1], ids[0]]
    assert await store.count() == 3
    run = await store.session("s")
    assert run is not None
    assert run["turns"] == 3
    assert [(c["id"], c["turn"]) for c in run["calls"]] == [
        (ids[0], 1),
        (ids[1], 2),
        (again[0], 3),
    ]
    assert run["tokens"] == 360 and run["cost_usd"] == 0.003


# ---- listing and bodies ----------------------------------------------------------------


async def test_recent_pages_newest_first_with_before(store: BaseStore) -> None:
    ids = await store.record_many([tr(uid=f"p{i}") for i in range(7)])
    page1 = await store.recent(limit=3)
    assert [r["id"] for r in page1] == [ids[6], ids[5], ids[4]]
    page2 = await store.recent(limit=3, before=page1[-1]["id"])
    assert [r["id"] for r in page2] == [ids[3], ids[2], ids[1]]
    page3 = await store.recent(limit=3, before=page2[-1]["id"])
    assert [r["uid"] for r in page3] == ["p0"]
    assert await store.recent(limit=3, before=ids[0]) == []
    assert await store.recent(limit=0) == []
    assert len(await store.recent(limit=50)) == 7


async def test_listing_row_and_get_shape(store: BaseStore) -> None:
    t = tr(
        uid="shape",
        ts=1_700_000_000.25,
        requested_model="gpt-4o-2024",
        error=None,
        streamed=True,
        cached_tokens=40,
        cache_write_tokens=5,
        reasoning_tokens=7,
        cost_usd=0.00125,
        price_source="genai-prices",
        latency_ms=812.5,
        ttft_ms=95.0,
        session_hint="hint-1",
        route="r-abc",
        route_label="summarize",
        reclaimable_tokens=30,
        reclaimable_usd=0.0002,
        components={"system": 60, "user": 30, "tools": 10},
        called_tools=["search", "fetch"],
        request={"messages": [{"role": "user", "content": "hi"}]},
    )
    (trace_id,) = await store.record_many([t])
    expected = {f: getattr(t, f) for f in SCALAR_FIELDS if f not in HIDDEN}
    expected.update(
        id=trace_id,
        total_tokens=120,
        components={"system": 60, "user": 30, "tools": 10},
        called_tools=["search", "fetch"],
        session_id="hint-1",
        turn=1,
    )
    (row,) = await store.recent()
    assert row == expected
    assert type(row["streamed"]) is bool and "session_hint" not in row
    full = await store.get(trace_id)
    assert full == {
        **expected,
        "request": {"messages": [{"role": "user", "content": "hi"}]},
        "response": None,
        "usage_raw": None,
        "request_headers": None,
        "detail": None,
        "analysis": None,
    }


async def test_get_round_trips_json_bodies(store: BaseStore) -> None:
    request = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": 'héllo ✓ 日本語 🎉 "quoted" \\ back'}],
        "nested": {"a": {"b": [1, 2.5, None, True, False, {"c": "d", "ключ": []}]}},
        "empty": {},
        "zero": 0,
        "neg": -1.75,
    }
    ids = await store.record_many(
        [
            tr(
                request=request,
                response=["list", {"top": None}],
                usage_raw={"prompt_tokens": 100, "details": {"cached": 0}},
                request_headers={"user-agent": "openai-python/1.40", "x-llmprof-session": "s"},
                detail="a plain string",
                analysis=42,
                components={"système": 3},
            ),
            tr(),  # every body None
        ]
    )
    got = await store.get(ids[0])
    assert got is not None
    assert got["request"] == request
    assert got["response"] == ["list", {"top": None}]
    assert got["usage_raw"] == {"prompt_tokens": 100, "details": {"cached": 0}}
    assert got["request_headers"] == {
        "user-agent": "openai-python/1.40",
        "x-llmprof-session": "s",
    }
    assert got["detail"] == "a plain string" and got["analysis"] == 42
    assert got["components"] == {"système": 3}
    bare = await store.get(ids[1])
    assert bare is not None
    assert [bare[k] for k in ("request", "response", "usage_raw", "detail", "analysis")] == [
        None
    ] * 5
    assert await store.get(ids[1] + 1000) is None


async def test_nul_and_nan_do_not_lose_the_trace(store: BaseStore) -> None:
    # Bodies are stored packed (bytes), as sent; get() hands back valid JSON on both
    # backends: NaN is null and a lone surrogate U+FFFD (no JSON encoder takes them),
    # NUL stays. PostgreSQL text columns cannot hold NUL, and keep the call with U+FFFD.
    request = {"text": "a\x00b", "raw": "lit \\u0000 NaN", "score": float("nan"), "s": "\ud800"}
    (trace_id,) = await store.record_many([tr(error="bad\x00byte", request=request)])
    got = await store.get(trace_id)
    assert got is not None
    assert got["request"] == {"text": "a\x00b", "raw": "lit \\u0000 NaN", "score": None,
                              "s": "\ufffd"}  # fmt: skip
    json.dumps(got, allow_nan=False, ensure_ascii=False).encode("utf-8")  # what the API does
    assert got["error"] == ("bad\x00byte" if store.backend == "sqlite" else "bad\ufffdbyte")


async def test_count_on_empty_and_filled_store(store: BaseStore) -> None:
    assert await store.count() == 0
    await store.record_many([tr() for _ in range(5)])
    assert await store.count() == 5


# ---- daily summary -------------------------------------------------------------------


async def test_daily_summary_is_zero_filled_oldest_first(store: BaseStore) -> None:
    now = time.time()
    today_ts = max(utc_midnight(0), now - 60)
    await store.record_many(
        [
            tr(ts=today_ts),
            tr(ts=today_ts - 2 * DAY, cost_usd=None),  # unpriced
            tr(
                ts=today_ts - 2 * DAY,
                outcome="http_error",
                cost_usd=None,
                prompt_tokens=None,
                completion_tokens=None,
                status=500,
            ),  # fmt: skip
            tr(ts=now - 40 * DAY, cost_usd=5.0),  # outside the window
        ]
    )
    out = await store.daily_summary(days=7, tz="UTC")
    today = dt.datetime.now(UTC).date()
    expected = [zero_day(today - dt.timedelta(days=6 - i)) for i in range(7)]
    expected[6].update(calls=1, tokens=120, prompt_tokens=100, completion_tokens=20, cost_usd=0.001)
    expected[4].update(
        calls=2, tokens=120, prompt_tokens=100, completion_tokens=20, unpriced_calls=1
    )
    assert out == expected
    assert await store.daily_summary(days=1, tz="UTC") == [expected[6]]


@pytest.mark.parametrize(
    ("tz", "calls_by_offset"),
    [
        ("UTC", {0: 4}),
        ("America/New_York", {-1: 1, 0: 3}),  # 03:00 UTC is the evening before
        ("Asia/Kolkata", {0: 2, 1: 2}),  # +05:30: 18:30 UTC is the next midnight
    ],
)
async def test_daily_summary_folds_into_local_days(
    store: BaseStore, tz: str, calls_by_offset: dict[int, int]
) -> None:
    base = utc_midnight(3)  # day D, 00:00 UTC
    day_d = dt.datetime.fromtimestamp(base, UTC).date()
    await store.record_many(
        [
            tr(ts=base + 3 * 3600, prompt_tokens=1, completion_tokens=0),
            tr(ts=base + 18 * 3600 + 29 * 60 + 59, prompt_tokens=100, completion_tokens=0),
            tr(ts=base + 18 * 3600 + 30 * 60, prompt_tokens=1000, completion_tokens=0),
            tr(ts=base + 20 * 3600, prompt_tokens=10, completion_tokens=0),
        ]
    )
    prompt_by_offset = {
        "UTC": {0: 1111},
        "America/New_York": {-1: 1, 0: 1110},
        "Asia/Kolkata": {0: 101, 1: 1010},
    }[tz]
    out = await store.daily_summary(days=10, tz=tz)
    assert len(out) == 10
    assert out[-1]["day"] == dt.datetime.now(ZoneInfo(tz)).date().isoformat()
    for entry in out:
        offset = (dt.date.fromisoformat(entry["day"]) - day_d).days
        calls = calls_by_offset.get(offset, 0)
        assert entry["calls"] == calls, entry
        assert entry["prompt_tokens"] == entry["tokens"] == prompt_by_offset.get(offset, 0)
        assert entry["cost_usd"] == round(0.001 * calls, 6)


# ---- model and route summaries ---------------------------------------------------------


async def test_model_summary_orders_and_counts_unpriced(store: BaseStore) -> None:
    await store.record_many(
        [
            tr(
                model="gpt-4o",
                cost_usd=0.5,
                prompt_tokens=100,
                completion_tokens=10,
                cached_tokens=50,
            ),  # fmt: skip
            tr(model="gpt-4o", cost_usd=0.25, prompt_tokens=200, completion_tokens=20),
            tr(model="gpt-4o", provider="azure", cost_usd=0.75),
            tr(model="claude", provider="anthropic", cost_usd=1.0, prompt_tokens=7),
            tr(model="b-model", cost_usd=0.1),
            tr(model="a-model", cost_usd=0.1),
            tr(model="same", provider="zz", cost_usd=0.05),
            tr(model="same", provider=None, cost_usd=0.05),
            tr(model="same", provider="aa", cost_usd=0.05),
            tr(model="mystery", cost_usd=None),  # ok but unpriced
            tr(
                model="mystery",
                cost_usd=None,
                outcome="upstream_error",
                prompt_tokens=None,
                completion_tokens=None,
            ),  # fmt: skip
        ]
    )

    def row(model, provider, calls, prompt, completion, cached, cost, unpriced=0):
        return {
            "model": model,
            "provider": provider,
            "calls": calls,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_tokens": cached,
            "tokens": prompt + completion,
            "cost_usd": cost,
            "unpriced_calls": unpriced,
        }

    assert await store.model_summary() == [
        row("claude", "anthropic", 1, 7, 20, 0, 1.0),
        row("gpt-4o", "openai", 2, 300, 30, 50, 0.75),
        row("gpt-4o", "azure", 1, 100, 20, 0, 0.75),
        row("a-model", "openai", 1, 100, 20, 0, 0.1),
        row("b-model", "openai", 1, 100, 20, 0, 0.1),
        row("same", None, 1, 100, 20, 0, 0.05),  # ties: NULL provider first, then by name
        row("same", "aa", 1, 100, 20, 0, 0.05),
        row("same", "zz", 1, 100, 20, 0, 0.05),
        row("mystery", "openai", 2, 100, 20, 0, 0.0, unpriced=1),
    ]


async def test_model_summary_empty(store: BaseStore) -> None:
    assert await store.model_summary() == []
    assert await store.routes() == []
    assert await store.sessions(min_turns=1) == []


async def test_routes_aggregate_per_template(store: BaseStore) -> None:
    t0 = 1_700_000_000.0
    await store.record_many(
        [
            tr(
                ts=t0 + 1,
                route="r1",
                route_label="alpha",
                prompt_tokens=100,
                cached_tokens=50,
                cost_usd=0.2,
            ),  # fmt: skip
            tr(
                ts=t0 + 5,
                route="r1",
                route_label="Beta",
                model="claude",
                prompt_tokens=301,
                cost_usd=0.3,
            ),  # fmt: skip
            tr(
                ts=t0 + 3,
                route="r1",
                route_label=None,
                prompt_tokens=None,
                completion_tokens=None,
                cost_usd=None,
                outcome="http_error",
            ),  # fmt: skip
            tr(
                ts=t0 + 2,
                route="r2",
                route_label="two",
                model=None,
                prompt_tokens=10,
                completion_tokens=5,
                cost_usd=0.5,
            ),  # fmt: skip
            tr(ts=t0 + 4, route="r3", prompt_tokens=0, completion_tokens=0, cost_usd=None),
            tr(ts=t0 + 6, route=None, cost_usd=9.0),
        ]
    )
    r1 = {
        "route": "r1",
        "label": "alpha",  # max() in binary order: "alpha" > "Beta"
        "calls": 3,
        "cost_usd": 0.5,
        "tokens": 441,
        "avg_prompt_tokens": 200.5,
        "cache_hit_ratio": 0.1247,  # 50 / 401
        "models": ["claude", "gpt-4o"],
        "first_seen": t0 + 1,
        "last_seen": t0 + 5,
    }
    r2 = {
        "route": "r2",
        "label": "two",
        "calls": 1,
        "cost_usd": 0.5,
        "tokens": 15,
        "avg_prompt_tokens": 10.0,
        "cache_hit_ratio": 0.0,
        "models": [],
        "first_seen": t0 + 2,
        "last_seen": t0 + 2,
    }
    r3 = {
        "route": "r3",
        "label": None,
        "calls": 1,
        "cost_usd": 0.0,
        "tokens": 0,
        "avg_prompt_tokens": 0.0,
        "cache_hit_ratio": 0.0,
        "models": ["gpt-4o"],
        "first_seen": t0 + 4,
        "last_seen": t0 + 4,
    }
    assert await store.routes() == [r1, r2, r3]  # equal cost: more calls first
    assert await store.routes(limit=2) == [r1, r2]


# ---- sessions ------------------------------------------------------------------------


async def test_sessions_number_turns_across_batches(store: BaseStore) -> None:
    t0 = 1_700_000_000.0
    single = tr(uid="single", ts=t0, cost_usd=0.5)
    b1 = [
        tr(
            uid="a1",
            ts=t0 + 1,
            session_hint="s1",
            provider="anthropic",
            model="claude",
            prompt_tokens=10,
            cost_usd=0.1,
        ),  # fmt: skip
        tr(uid="b1", ts=t0 + 2, session_hint="s2", prompt_tokens=5),
        tr(uid="a2", ts=t0 + 3, session_hint="s1", model=None, prompt_tokens=20, cost_usd=0.2),
        single,
    ]
    b2 = [
        tr(uid="b2", ts=t0 + 4, session_hint="s2", prompt_tokens=6),
        tr(uid="a3", ts=t0 + 5, session_hint=" s1 ", prompt_tokens=30, cost_usd=None),
    ]
    b3 = [tr(uid="a4", ts=t0 + 6, session_hint="s1", prompt_tokens=40, cost_usd=0.3)]
    ids = {}
    for batch in (b1, b2, b3):
        for t, i in zip(batch, await store.record_many(batch), strict=True):
            ids[t.uid] = i

    s1 = {
        "session_id": "s1",
        "turns": 4,
        "started": t0 + 1,
        "last": t0 + 6,
        "tokens": 10 + 20 + 20 + 20 + 30 + 20 + 40 + 20,
        "cost_usd": 0.6,
        "models": ["claude", "gpt-4o"],
        "provider": "anthropic",
        "first_prompt_tokens": 10,
        "last_prompt_tokens": 40,
    }
    s2 = {
        "session_id": "s2",
        "turns": 2,
        "started": t0 + 2,
        "last": t0 + 4,
        "tokens": 25 + 26,
        "cost_usd": 0.002,
        "models": ["gpt-4o"],
        "provider": "openai",
        "first_prompt_tokens": 5,
        "last_prompt_tokens": 6,
    }
    lone = {
        "session_id": "call-single",
        "turns": 1,
        "started": t0,
        "last": t0,
        "tokens": 120,
        "cost_usd": 0.5,
        "models": ["gpt-4o"],
        "provider": "openai",
        "first_prompt_tokens": 100,
        "last_prompt_tokens": 100,
    }
    assert await store.sessions() == [s1, s2]  # min_turns=2 hides one-call runs
    assert await store.sessions(min_turns=1) == [s1, s2, lone]
    assert await store.sessions(min_turns=3) == [s1]
    assert await store.sessions(limit=1, min_turns=1) == [s1]

    run = await store.session("s1")
    assert run is not None
    calls = run.pop("calls")
    assert run == s1
    assert [(c["id"], c["turn"]) for c in calls] == [
        (ids["a1"], 1),
        (ids["a2"], 2),
        (ids["a3"], 3),
        (ids["a4"], 4),
    ]
    assert calls[2] == {
        "id": ids["a3"],
        "ts": t0 + 5,
        "turn": 3,
        "model": "gpt-4o",
        "prompt_tokens": 30,
        "completion_tokens": 20,
        "total_tokens": 50,
        "cached_tokens": None,
        "cost_usd": None,
        "latency_ms": None,
        "ttft_ms": None,
        "outcome": "ok",
        "components": {},
    }
    s2_run = await store.session("s2")
    assert s2_run is not None
    assert [c["turn"] for c in s2_run["calls"]] == [1, 2]
    assert (await store.recent(limit=1))[0]["session_id"] == "s1"
    assert await store.session("nope") is None


# ---- reclaimable summary -------------------------------------------------------------


DUP_ACTION = {
    "action": "Remove duplicated content: the same block is sent more than once in a request"
}


def reclaimable(calls, cost, reclaim, unpriced, projectable, monthly, span, days, dup_calls=None):
    """The expected summary when every saving comes from duplicated content."""
    return {
        "calls": calls,
        "cost_usd": cost,
        "reclaimable_usd": reclaim,
        "pct": round(100 * reclaim / cost, 1) if cost else 0.0,
        "unpriced_calls": unpriced,
        "by_source": {"duplicates": reclaim, "caching": 0.0, "unused_tools": 0.0},
        "actions": [
            DUP_ACTION | {"calls": calls if dup_calls is None else dup_calls, "save_usd": reclaim}
        ]
        if reclaim
        else [],
        "unused_tools_pending": 0,
        "projectable": projectable,
        "monthly_reclaimable_usd": monthly,
        "span_seconds": span,
        "active_days": days,
    }


DUP_CENT = {"reclaimable_usd": 0.01, "reclaim_dup_usd": 0.01}


async def test_reclaimable_summary_on_empty_store(store: BaseStore) -> None:
    assert await store.reclaimable_summary() == reclaimable(0, 0.0, 0.0, 0, False, None, 0, 0)


@pytest.mark.parametrize(
    ("day1", "day2", "expected"),
    [
        (25, 25, reclaimable(50, 5.0, 0.5, 0, True, 7.5, DAY + 100, 2)),
        (25, 24, reclaimable(49, 4.9, 0.49, 0, False, None, DAY + 100, 2)),  # < 50 calls
        (60, 0, reclaimable(60, 6.0, 0.6, 0, False, None, 100, 1)),  # one active day
    ],
)
async def test_reclaimable_projection_gate(
    store: BaseStore, day1: int, day2: int, expected: dict[str, Any]
) -> None:
    base = 1_699_920_000.0 + 3600  # 01:00 UTC
    traces = [
        tr(ts=base + (i * 100 / max(day1 - 1, 1)), cost_usd=0.1, **DUP_CENT) for i in range(day1)
    ]
    traces += [
        tr(ts=base + DAY + (i * 100 / max(day2 - 1, 1)), cost_usd=0.1, **DUP_CENT)
        for i in range(day2)
    ]
    await store.record_many(traces)
    assert await store.reclaimable_summary() == expected


async def test_reclaimable_counts_only_ok_calls_as_unpriced(store: BaseStore) -> None:
    base = 1_699_920_000.0
    await store.record_many(
        [
            tr(ts=base, cost_usd=0.4, reclaimable_usd=0.1, reclaim_dup_usd=0.1),
            tr(ts=base + 10, cost_usd=None),
            tr(ts=base + 3 * DAY + 5, cost_usd=None, outcome="client_abort"),
        ]
    )
    assert await store.reclaimable_summary() == reclaimable(
        3, 0.4, 0.1, 1, False, None, 3 * DAY + 5, 2, dup_calls=1
    )


# ---- read-only stores and lifecycle --------------------------------------------------


async def test_readonly_store_reads_but_refuses_writes(store: BaseStore, make_store) -> None:
    await store.record(tr(uid="w"))
    ro = await make_store(readonly=True)
    assert ro.readonly and await ro.count() == 1
    with pytest.raises(StoreError, match="read-only"):
        await ro.record_many([tr(uid="x")])
    assert [r["uid"] for r in await ro.recent()] == ["w"]
    await store.record(tr(uid="y"))  # the reader sees the writer's commits
    assert await ro.count() == 2


async def test_close_is_idempotent(db_url: str) -> None:
    store = storage.make_store(db_url)
    await store.close()  # never opened
    await store.open()
    await store.open()  # a second open is a no-op
    assert await store.count() == 0
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.count()


async def test_readonly_open_of_missing_sqlite_file(tmp_path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(StoreError, match="no llmprof database"):
        await open_store(f"sqlite:///{path}", readonly=True)
    assert not path.exists()


@pytest.mark.postgres
async def test_readonly_open_of_empty_pg_schema(pg_url: str) -> None:
    with pytest.raises(StoreError, match="start the proxy once") as e:
        await open_store(pg_url, readonly=True)
    assert "\n" not in str(e.value)


@pytest.mark.postgres
async def test_pg_readonly_connection_cannot_write(pg_url: str) -> None:
    async with await open_store(pg_url) as writer, await open_store(pg_url, readonly=True) as ro:
        assert isinstance(ro, PostgresStore) and isinstance(writer, PostgresStore)
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await ro.pool.execute("DELETE FROM traces")
        names = [r[0] for r in await writer.pool.fetch("SELECT name FROM schema_migrations")]
        assert names == [n for n, _ in migrate.migrations("postgres")]
        schema = await writer.pool.fetchval(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'runs'"
            " AND table_schema = current_schema()"
        )
        assert schema == writer.schema


# ---- both backends give identical answers ---------------------------------------------


def dataset(now: float) -> list[list[Trace]]:
    rng = random.Random(20240601)
    models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "Zeta", "alpha"]
    traces = []
    for i in range(90):
        ok = rng.random() > 0.15
        priced = ok and rng.random() > 0.1
        prompt = rng.randint(0, 5000) if ok else None
        traces.append(
            tr(
                uid=f"d{i:03d}",
                ts=now - rng.uniform(0, 12 * DAY),
                model=rng.choice(models),
                provider=rng.choice(["openai", "anthropic", "azure"]),
                outcome="ok" if ok else rng.choice(["http_error", "upstream_error"]),
                status=200 if ok else 500,
                streamed=rng.random() > 0.5,
                prompt_tokens=prompt,
                completion_tokens=rng.randint(0, 900) if ok else None,
                cached_tokens=rng.choice([None, 0, (prompt or 0) // 2]),
                cost_usd=round(rng.uniform(0, 0.05), 7) if priced else None,
                latency_ms=rng.uniform(50, 5000),
                ttft_ms=rng.choice([None, rng.uniform(10, 400)]),
                session_hint=rng.choice(["run-a", "run-b", "run-c", None, None]),
                route=rng.choice(["r1", "r2", "r3", None]),
                route_label=rng.choice(["alpha", "Beta", None]),
                reclaimable_usd=rng.choice([None, 0.0, 0.0021]),
                components={"system": rng.randint(0, 99), "ユーザー": 1},
                called_tools=rng.sample(["search", "fetch", "run"], rng.randint(0, 2)),
                request={"i": i, "text": "naïve ✓", "nested": {"x": [i, None, 1.5]}},
                response={"ok": ok} if ok else None,
            )
        )
    # Ties the orderings must break the same way: NULL model first, then by name/provider.
    for uid, model, provider in [
        ("t1", "tie-b", "p1"),
        ("t2", "tie-a", "p2"),
        ("t3", "tie-a", "p1"),
        ("t4", None, "p1"),
    ]:
        traces.append(tr(uid=uid, ts=now - 3600, model=model, provider=provider, cost_usd=0.0123))
    batches = [traces[i : i + 7] for i in range(0, len(traces), 7)]
    batches.append([traces[3], traces[50], traces[3]])  # a replay
    return batches


async def query_all(store: BaseStore, uids: list[str], id_of: dict[str, int]) -> dict[str, Any]:
    uid_of = {v: k for k, v in id_of.items()}

    def norm(value: Any) -> Any:  # ids may differ between databases; uids do not
        if isinstance(value, dict):
            return {k: uid_of[v] if k == "id" else norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    sessions = await store.sessions(limit=1000, min_turns=1)
    out: dict[str, Any] = {
        "count": await store.count(),
        "recent": await store.recent(limit=1000),
        "recent_page": await store.recent(limit=5, before=id_of[uids[40]]),
        "get": [await store.get(id_of[u]) for u in uids],
        "models": await store.model_summary(),
        "sessions": sessions,
        "sessions_2": await store.sessions(),
        "sessions_limit": await store.sessions(limit=2, min_turns=1),
        "session": [await store.session(s["session_id"]) for s in sessions],
        "routes": await store.routes(limit=100),
        "routes_limit": await store.routes(limit=2),
        "reclaimable": await store.reclaimable_summary(),
    }
    for tz in (None, "UTC", "America/New_York", "Asia/Kolkata"):
        out[f"daily_{tz}"] = await store.daily_summary(days=14, tz=tz)
    return norm(out)


@pytest.mark.postgres
async def test_both_backends_give_identical_answers(pg_url: str, tmp_path) -> None:
    batches = dataset(time.time())
    results = []
    for url in (f"sqlite:///{tmp_path / 'same.db'}", pg_url):
        async with await open_store(url) as store:
            id_of: dict[str, int] = {}
            for batch in batches:
                ids = await store.record_many(batch)
                id_of.update(zip([t.uid for t in batch], ids, strict=True))
            results.append(await query_all(store, sorted(id_of), id_of))
    lite, pg = results
    assert (lite["count"], len(lite["sessions"]), len(lite["sessions_2"])) == (94, 52, 3)
    assert len(lite["routes"]) == 3 and lite["reclaimable"]["unpriced_calls"] == 10
    assert lite["reclaimable"]["projectable"] is True
    assert [(m["model"], m["provider"]) for m in lite["models"][-4:]] == [
        (None, "p1"),
        ("tie-a", "p1"),
        ("tie-a", "p2"),
        ("tie-b", "p1"),
    ]
    for key in lite:
        assert pg[key] == lite[key], key


# ---- several PostgreSQL writers --------------------------------------------------------


@pytest.mark.postgres
async def test_concurrent_pg_writers_keep_turns_contiguous(pg_url: str) -> None:
    rng = random.Random(7)
    hints = ["s1", "s2", "s3"]
    writers = [PostgresStore(pg_url), PostgresStore(pg_url)]
    await asyncio.gather(*(w.open() for w in writers))  # concurrent first migration
    try:
        plans: list[list[list[Trace]]] = [[], []]
        n = 0
        for _ in range(40):
            for plan in plans:
                batch = []
                for _ in range(rng.randint(1, 4)):
                    n += 1
                    batch.append(tr(uid=f"c{n}", session_hint=rng.choice([*hints, None])))
                plan.append(batch)
        shared = [tr(uid=f"shared{i}", session_hint=hints[i % 3]) for i in range(6)]
        for plan in plans:  # both writers replay the same batch at once
            plan.insert(len(plan) // 2, shared)

        async def run(writer: BaseStore, plan: list[list[Trace]]) -> list[list[int]]:
            return await asyncio.gather(*(writer.record_many(b) for b in plan))

        returned = await asyncio.gather(*(run(w, p) for w, p in zip(writers, plans, strict=True)))

        id_of: dict[str, int] = {}
        for plan, results in zip(plans, returned, strict=True):
            for batch, ids in zip(plan, results, strict=True):
                for t, i in zip(batch, ids, strict=True):
                    assert id_of.setdefault(t.uid, i) == i  # one id per uid, everywhere
        assert len(set(id_of.values())) == len(id_of) == n + 6
        assert await writers[1].count() == n + 6

        by_hint: dict[str | None, set[str]] = {}
        for plan in plans:
            for batch in plan:
                for t in batch:
                    by_hint.setdefault(t.session_hint, set()).add(t.uid)
        for hint in hints:
            run_ = await writers[0].session(hint)
            assert run_ is not None
            expected = len(by_hint[hint])
            assert run_["turns"] == expected
            assert [c["turn"] for c in run_["calls"]] == list(range(1, expected + 1))
            assert {c["id"] for c in run_["calls"]} == {id_of[u] for u in by_hint[hint]}
        singles = await writers[0].sessions(limit=10_000, min_turns=1)
        assert len(singles) == 3 + len(by_hint[None])
        migrated = await writers[0].pool.fetch("SELECT name FROM schema_migrations")
        assert len(migrated) == len(migrate.migrations("postgres"))
    finally:
        for w in writers:
            await w.close()


# ---- opening stores -------------------------------------------------------------------


async def test_open_store_rejects_unknown_scheme() -> None:
    with pytest.raises(StoreError) as e:
        await open_store("mysql://db.example/llm")
    msg = str(e.value)
    assert "mysql://db.example/llm" in msg and "sqlite:///" in msg and "postgresql://" in msg


async def test_explicit_url_beats_env_beats_default(monkeypatch, tmp_path) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LLMPROF_HOME", str(home))
    env_db, explicit_db = tmp_path / "env.db", tmp_path / "explicit.db"
    monkeypatch.setenv("LLMPROF_DB_URL", f"sqlite:///{env_db}")

    async with await open_store(f"sqlite:///{explicit_db}") as store:
        assert isinstance(store, SQLiteStore) and store.path == str(explicit_db)
    assert explicit_db.exists() and not env_db.exists()

    async with await open_store() as store:
        assert isinstance(store, SQLiteStore) and store.path == str(env_db)
    assert env_db.exists() and not (home / "llmprof.db").exists()

    monkeypatch.delenv("LLMPROF_DB_URL")
    async with await open_store() as store:
        assert isinstance(store, SQLiteStore) and store.path == str(home / "llmprof.db")
    assert (home / "llmprof.db").exists()

    monkeypatch.setenv("LLMPROF_DB_URL", "postgres://u@db.example:5433/llm?schema=team_a")
    pg = storage.make_store()
    assert isinstance(pg, PostgresStore) and pg.schema == "team_a"


async def test_unreachable_pg_fails_fast_without_the_password() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as e:
        await open_store("postgresql://llmprof:s3cret-pw@127.0.0.1:1/llmprof_db")
    assert time.monotonic() - started < 5
    msg = str(e.value)
    assert "127.0.0.1:1" in msg and "llmprof_db" in msg and "LLMPROF_DB_URL" in msg
    assert "s3cret" not in msg and "\n" not in msg


@pytest.mark.postgres
async def test_unknown_pg_database_is_named(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    url = urlunsplit(parts._replace(path="/llmprof_no_such_db", query=""))
    with pytest.raises(StoreError) as e:
        await open_store(url)
    msg = str(e.value)
    assert "'llmprof_no_such_db' does not exist: create it (createdb llmprof_no_such_db)" in msg


def test_schema_parameter_is_llmprofs_own() -> None:
    assert split_schema("postgresql://u:p%40ss@h:5/db?sslmode=disable&schema=team_a") == (
        "postgresql://u:p%40ss@h:5/db?sslmode=disable",
        "team_a",
    )
    assert split_schema("postgresql://h/db") == ("postgresql://h/db", None)
    with pytest.raises(StoreError, match="not a plain SQL name"):
        storage.make_store("postgresql://h/db?schema=bad-name;drop")


async def test_unused_tools_ledger_and_no_double_counting(store: BaseStore) -> None:
    """A tool shipped in 20+ calls of one template and never called is reclaimable at
    its ledger cost; one called once is not; one below the gate is only pending."""

    def call(i: int, route: str, called: set[str], **kw: Any) -> Trace:
        usage = [
            {"tool": "search", "tokens": 300, "called": "search" in called, "residual_usd": 0.003},
            {"tool": "legacy_fax", "tokens": 200, "called": False, "residual_usd": 0.002},
        ]
        return tr(
            uid=f"{route}-{i}",
            ts=1_700_000_000.0 + i,
            route=route,
            route_label=f"label {route}",
            tool_usage=usage,
            cost_usd=0.05,
            **kw,
        )

    # template A: 21 calls, "search" called once, "legacy_fax" never; caching claimed too
    batch = [
        call(i, "A", {"search"} if i == 3 else set(), reclaimable_usd=0.01, reclaim_cache_usd=0.01)
        for i in range(21)
    ]
    # template B: 5 calls, nothing called: below the 20-call gate
    batch += [call(100 + i, "B", set()) for i in range(5)]
    for part in (batch[:7], batch[7:15], batch[15:]):  # the ledger sums across batches
        await store.record_many(part)
    summary = await store.reclaimable_summary()
    assert summary["by_source"] == {"duplicates": 0.0, "caching": 0.21, "unused_tools": 0.042}
    assert summary["reclaimable_usd"] == 0.252 and summary["unused_tools_pending"] == 2
    assert summary["actions"] == [
        {
            "action": "Cache the stable prefix (system prompt and tool schemas) with cache_control",
            "calls": 21,
            "save_usd": 0.21,
        },
        {
            "action": "Stop sending 1 never-called tool(s) (legacy_fax) "
            "with the template “label A”",
            "calls": 21,
            "save_usd": 0.042,
        },
    ]
    assert summary["reclaimable_usd"] <= summary["cost_usd"]
    # replaying the same traces (a spool replay) changes nothing
    await store.record_many(batch)
    assert await store.reclaimable_summary() == summary


async def test_prune_old_traces_and_bodies_keeps_summaries_right(store: BaseStore) -> None:
    old, new = 1_700_000_000.0, 1_700_000_000.0 + 40 * DAY
    batch = [
        tr(uid=f"o{i}", ts=old + i, session_hint="mixed", request={"big": "x" * 100}, cost_usd=0.5)
        for i in range(7)
    ]
    batch += [
        tr(uid=f"n{i}", ts=new + i, session_hint="mixed", request={"big": "y"}, cost_usd=0.25)
        for i in range(3)
    ]
    batch += [tr(uid="lonely", ts=old + 50, session_hint="gone")]
    await store.record_many(batch)
    # bodies only: metrics stay, bodies of old calls go, in batches
    pruned = [await store.prune(new, bodies_only=True, batch=3) for _ in range(4)]
    assert pruned == [3, 3, 1, 0]  # seven old calls with bodies ("lonely" has none)
    first = await store.get((await store.recent(limit=20))[-1]["id"])
    assert first["uid"] == "o0" and first["request"] is None and first["prompt_tokens"] == 100
    n2 = next(r for r in await store.recent(limit=20) if r["uid"] == "n2")
    assert (await store.get(n2["id"]))["request"] == {"big": "y"}
    # whole traces
    assert [await store.prune(new, batch=5) for _ in range(3)] == [5, 3, 0]
    assert await store.count() == 3
    assert await store.session("gone") is None
    run = await store.session("mixed")
    assert [c["turn"] for c in run["calls"]] == [8, 9, 10] and run["turns"] == 10
    assert run["cost_usd"] == 0.75 and run["tokens"] == 360 and run["started"] == new
    assert (await store.model_summary())[0]["calls"] == 3
    reclaim = await store.reclaimable_summary()
    assert reclaim["calls"] == 3 and reclaim["cost_usd"] == 0.75
    await store.record(tr(uid="later", ts=new + 9, session_hint="mixed"))  # numbering goes on
    assert (await store.session("mixed"))["calls"][-1]["turn"] == 11


async def test_rollups_always_equal_the_traces(store: BaseStore) -> None:
    """Summaries read rollups the writer keeps; after batches, replays and prunes they
    must still equal aggregates computed here from the traces themselves."""
    rng = random.Random(3)
    models = ["gpt-4o", "claude-sonnet-4-5", None]
    traces = []
    for i in range(300):
        cost = None if rng.random() < 0.1 else round(rng.random() / 100, 6)
        traces.append(
            tr(
                uid=f"r{i}",
                ts=1_780_000_000.0 + i * 1800,
                model=rng.choice(models),
                provider=rng.choice(["openai", "anthropic"]),
                cost_usd=cost,
                outcome="ok" if rng.random() < 0.9 else "http_error",
                prompt_tokens=rng.randrange(10, 5000),
                cached_tokens=rng.randrange(0, 10),
                completion_tokens=rng.randrange(1, 300),
                route=rng.choice([None, "ra", "rb", "rc"]),
                route_label="label",
                reclaim_dup_usd=rng.choice([0.0, 0.001]),
            )
        )
    for i in range(0, 300, 37):
        await store.record_many(traces[i : i + 37])
    await store.record_many(traces[100:140])  # a replay
    while await store.prune(1_780_000_000.0 + 80 * 1800, batch=13):
        pass
    left = await store.recent(limit=1000)
    assert len(left) == 220 == await store.count()

    def agg(rows):
        return {
            "calls": len(rows),
            "tokens": sum(r["total_tokens"] or 0 for r in rows),
            "cost_usd": round(sum(r["cost_usd"] or 0 for r in rows), 6),
            "unpriced": sum(1 for r in rows if r["cost_usd"] is None and r["outcome"] == "ok"),
        }

    by_model = {}
    for r in left:
        by_model.setdefault((r["model"], r["provider"]), []).append(r)
    got = {
        (m["model"], m["provider"]): {
            "calls": m["calls"],
            "tokens": m["tokens"],
            "cost_usd": m["cost_usd"],
            "unpriced": m["unpriced_calls"],
        }
        for m in await store.model_summary()
    }
    assert got == {k: agg(v) for k, v in by_model.items()}
    by_route = {}
    for r in left:
        if r["route"]:
            by_route.setdefault(r["route"], []).append(r)
    routes = {r["route"]: r for r in await store.routes(limit=10)}
    for name, rows in by_route.items():
        expect = agg(rows)
        assert (routes[name]["calls"], routes[name]["tokens"]) == (
            expect["calls"],
            expect["tokens"],
        )
        assert routes[name]["cost_usd"] == expect["cost_usd"]
        assert routes[name]["first_seen"] == min(r["ts"] for r in rows)
        assert routes[name]["avg_prompt_tokens"] == round(
            sum(r["prompt_tokens"] for r in rows) / len(rows), 1
        )
    reclaim = await store.reclaimable_summary()
    assert reclaim["calls"] == 220 and reclaim["cost_usd"] == agg(left)["cost_usd"]
    assert reclaim["by_source"]["duplicates"] == round(
        sum(r["reclaim_dup_usd"] or 0 for r in left), 6
    )


async def test_turns_follow_start_times_when_calls_arrive_out_of_order(store: BaseStore) -> None:
    """Several proxies (or a long call finishing after a short one) write a run's calls
    out of order: turns still follow the calls' start times, 1..n."""
    base = 1_780_000_000.0
    calls = [
        tr(uid=f"o{i}", ts=base + i, session_hint="ooo", prompt_tokens=100 * (i + 1))
        for i in range(6)
    ]
    await store.record_many([calls[0], calls[2]])
    await store.record_many([calls[1]])  # started before calls[2], written after it
    await store.record_many([calls[5], calls[3], calls[4]])
    run = await store.session("ooo")
    assert [c["turn"] for c in run["calls"]] == [1, 2, 3, 4, 5, 6]
    assert [c["prompt_tokens"] for c in run["calls"]] == [100, 200, 300, 400, 500, 600]
    assert (run["first_prompt_tokens"], run["last_prompt_tokens"], run["turns"]) == (100, 600, 6)


async def test_lookups_stay_indexed_after_many_batches(make_store) -> None:
    """The writer runs the same statements thousands of times. On PostgreSQL, after
    five runs a prepared statement may switch to a generic plan that scans the whole
    traces table for `uid = ANY($1)`; the store's connections forbid that."""
    store = await make_store()
    reader = await make_store(readonly=True)
    for i in range(8):  # more than five runs of each prepared lookup
        await store.record_many([tr(uid=f"b{i}-{k}", ts=1_700_000_000.0 + i * 10 + k)
                                 for k in range(3)])  # fmt: skip
    assert await store.count() == 24
    if store.backend != "postgresql":
        return
    for s in (store, reader):
        async with s.pool.acquire() as con:
            assert await con.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
