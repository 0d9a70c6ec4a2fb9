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


def reclaimable_from_totals(totals: dict[str, Any], now: float) -> dict[str, Any]:
    """Turn one aggregate row into the reclaimable summary.

    The projection needs at least PROJECTION_MIN_CALLS calls over at least
    PROJECTION_MIN_DAYS active days; it scales the reclaimable dollars per
    active day to 30 days. Otherwise it is None and only the honest totals are
    given.
    """
    calls = int(totals.get("calls") or 0)
    cost = float(totals.get("cost_usd") or 0.0)
    reclaimable = float(totals.get("reclaimable_usd") or 0.0)
    active_days = int(totals.get("active_days") or 0)
    first_ts, last_ts = totals.get("first_ts"), totals.get("last_ts")
    span = int(last_ts - first_ts) if first_ts is not None and last_ts is not None else 0
    by_source = {
        "duplicates": round_usd(float(totals.get("dup_usd") or 0.0)),
        "caching": round_usd(float(totals.get("cache_usd") or 0.0)),
        "unused_tools": round_usd(float(totals.get("unused_tools_usd") or 0.0)),
    }
    projectable = calls >= PROJECTION_MIN_CALLS and active_days >= PROJECTION_MIN_DAYS
    monthly = round(reclaimable / active_days * 30, 2) if projectable else None
    return {
        "calls": calls,
        "cost_usd": round_usd(cost),
        "reclaimable_usd": round_usd(reclaimable),
        "pct": round(100.0 * reclaimable / cost, 1) if cost > 0 else 0.0,
        "unpriced_calls": int(totals.get("unpriced_calls") or 0),
        "by_source": by_source,
        "actions": list(totals.get("actions") or []),
        "projectable": projectable,
        "monthly_reclaimable_usd": monthly,
        "span_seconds": span,
        "active_days": active_days,
    }
