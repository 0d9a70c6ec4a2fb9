"""Shaping shared by every backend: the SQL returns small aggregate rows, this
module turns them into the answers the contract promises. Pure functions."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

QUARTER_HOUR = 900
# A monthly projection from a burst of calls is a guess, not a forecast.
PROJECTION_MIN_CALLS = 50
PROJECTION_MIN_DAYS = 2
# A tool counts as never used only after this many calls of its template.
UNUSED_MIN_CALLS = 20


def round_usd(value: float | None, places: int = 6) -> float | None:
    return None if value is None else round(float(value), places)


def fold_daily(
    rows: list[tuple], first_day: dt.date, days: int, zone: ZoneInfo | None
) -> list[dict[str, Any]]:
    """Fold quarter-hour buckets into `days` local calendar days from `first_day`."""
    out: dict[dt.date, dict[str, Any]] = {}
    for i in range(days):
        day = first_day + dt.timedelta(days=i)
        out[day] = {
            "day": day.isoformat(),
            "calls": 0,
            "tokens": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "unpriced_calls": 0,
        }
    for bucket, calls, tokens, prompt, completion, cost, unpriced in rows:
        day = dt.datetime.fromtimestamp(int(bucket) * QUARTER_HOUR, zone).date()
        entry = out.get(day)
        if entry is None:  # a bucket straddling the window's first midnight
            continue
        entry["calls"] += int(calls)
        entry["tokens"] += int(tokens or 0)
        entry["prompt_tokens"] += int(prompt or 0)
        entry["completion_tokens"] += int(completion or 0)
        entry["cost_usd"] += float(cost or 0.0)
        entry["unpriced_calls"] += int(unpriced or 0)
    for entry in out.values():
        entry["cost_usd"] = round_usd(entry["cost_usd"])
    return list(out.values())


def reclaimable_from_totals(
    totals: dict[str, Any], unused: list[tuple], now: float
) -> dict[str, Any]:
    """Turn the aggregate row and the never-called tools into the reclaimable summary.

    Sources never double count: each call's duplicate and caching savings are
    capped by its input cost, and a tool's ledger cost is already net of the
    caching saving claimed on it. A tool is "unused" once it was shipped in at
    least UNUSED_MIN_CALLS calls of one template and never called in them; fewer
    calls only count as pending. The monthly projection needs at least
    PROJECTION_MIN_CALLS calls over PROJECTION_MIN_DAYS active days; it scales
    the reclaimable dollars per active day to 30 days, else it is None.
    """
    calls = int(totals.get("calls") or 0)
    cost = float(totals.get("cost_usd") or 0.0)
    dup = float(totals.get("dup_usd") or 0.0)
    cache = float(totals.get("cache_usd") or 0.0)
    dead = [r for r in unused if int(r[3]) >= UNUSED_MIN_CALLS]
    pending = len(unused) - len(dead)
    unused_usd = sum(float(r[5]) for r in dead)
    reclaimable = dup + cache + unused_usd
    active_days = int(totals.get("active_days") or 0)
    first_ts, last_ts = totals.get("first_ts"), totals.get("last_ts")
    span = int(last_ts - first_ts) if first_ts is not None and last_ts is not None else 0
    actions = []
    if dup > 0:
        actions.append(
            {
                "action": "Remove duplicated content: the same block is sent more "
                "than once in a request",
                "calls": int(totals.get("dup_calls") or 0),
                "save_usd": round_usd(dup),
            }
        )
    if cache > 0:
        actions.append(
            {
                "action": "Cache the stable prefix (system prompt and tool schemas) "
                "with cache_control",
                "calls": int(totals.get("cache_calls") or 0),
                "save_usd": round_usd(cache),
            }
        )
    by_route: dict[str, list[tuple]] = {}
    for row in dead:
        by_route.setdefault(row[0], []).append(row)
    for rows in by_route.values():
        names = ", ".join(r[1] for r in rows[:5]) + (" …" if len(rows) > 5 else "")
        label = rows[0][2] or rows[0][0]
        actions.append(
            {
                "action": f"Stop sending {len(rows)} never-called tool(s) ({names}) "
                f"with the template “{label}”",
                "calls": max(int(r[3]) for r in rows),
                "save_usd": round_usd(sum(float(r[5]) for r in rows)),
            }
        )
    actions.sort(key=lambda a: (-a["save_usd"], a["action"]))
    projectable = calls >= PROJECTION_MIN_CALLS and active_days >= PROJECTION_MIN_DAYS
    return {
        "calls": calls,
        "cost_usd": round_usd(cost),
        "reclaimable_usd": round_usd(reclaimable),
        "pct": round(100.0 * reclaimable / cost, 1) if cost > 0 else 0.0,
        "unpriced_calls": int(totals.get("unpriced_calls") or 0),
        "by_source": {
            "duplicates": round_usd(dup),
            "caching": round_usd(cache),
            "unused_tools": round_usd(unused_usd),
        },
        "actions": actions,
        "unused_tools_pending": pending,
        "projectable": projectable,
        "monthly_reclaimable_usd": round(reclaimable / active_days * 30, 2)
        if projectable
        else None,
        "span_seconds": span,
        "active_days": active_days,
    }


def route_dict(row: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """A routes() row from a rollup aggregate: `prompt`, `prompt_calls` and `cached`
    become the average prompt and the cache hit ratio."""
    prompt, prompt_calls, cached = row.pop("prompt"), row.pop("prompt_calls"), row.pop("cached")
    row["avg_prompt_tokens"] = round(prompt / prompt_calls, 1) if prompt_calls else None
    row["cache_hit_ratio"] = round(cached / prompt, 4) if prompt else 0.0
    row["models"] = sorted({m for m in models if m})
    return row
