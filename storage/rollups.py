"""Rollup tables the writer keeps, so every summary reads hundreds of rows, not millions.

- `rollup_models`  one row per (model, provider), all time: model_summary, totals,
  reclaimable sources;
- `rollup_buckets` one row per quarter-hour: daily_summary in any time zone, active
  days;
- `rollup_routes`  one row per (template, model): routes().

`record_many` adds each batch's deltas in the same transaction as its traces;
`prune` subtracts the deltas of the traces it deletes (and drops emptied rows), so
the rollups always equal an aggregate over the traces table. Both backends use
these definitions; each only renders the upsert in its dialect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

QUARTER_HOUR = 900
NULL_KEY = ""  # rollup keys are NOT NULL; a missing model or provider is ""


@dataclass(frozen=True)
class Table:
    name: str
    keys: tuple[str, ...]
    sums: tuple[str, ...]
    extra: tuple[str, ...] = ()  # label / first_seen / last_seen, merged, not summed

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *self.extra, *self.sums)


MODELS = Table(
    "rollup_models", ("model", "provider"),
    ("calls", "unpriced_calls", "prompt_tokens", "completion_tokens", "cached_tokens",
     "total_tokens", "cost_usd", "reclaimable_usd", "dup_usd", "dup_calls", "cache_usd",
     "cache_calls"),
)  # fmt: skip
BUCKETS = Table(
    "rollup_buckets", ("bucket",),
    ("calls", "unpriced_calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"),
)  # fmt: skip
ROUTES = Table(
    "rollup_routes", ("route", "model"),
    ("calls", "cost_usd", "total_tokens", "prompt_tokens", "prompt_calls", "cached_tokens"),
    ("label", "first_seen", "last_seen"),
)  # fmt: skip
TABLES = (MODELS, BUCKETS, ROUTES)
# The trace columns the deltas read (prune selects these for the rows it deletes).
SOURCE_COLUMNS = (
    "ts", "model", "provider", "route", "route_label", "outcome", "prompt_tokens",
    "completion_tokens", "cached_tokens", "total_tokens", "cost_usd", "reclaimable_usd",
    "reclaim_dup_usd", "reclaim_cache_usd",
)  # fmt: skip


def _values(t: Any) -> dict[str, Any]:
    get = (lambda k: t.get(k)) if isinstance(t, dict) else (lambda k: getattr(t, k))
    cost, dup, cache = (
        get("cost_usd"),
        get("reclaim_dup_usd") or 0.0,
        get("reclaim_cache_usd") or 0.0,
    )
    prompt = get("prompt_tokens")
    return {
        "calls": 1,
        "unpriced_calls": 1 if cost is None and get("outcome") == "ok" else 0,
        "prompt_tokens": prompt or 0,
        "prompt_calls": 0 if prompt is None else 1,
        "completion_tokens": get("completion_tokens") or 0,
        "cached_tokens": get("cached_tokens") or 0,
        "total_tokens": get("total_tokens") or 0,
        "cost_usd": cost or 0.0,
        "reclaimable_usd": get("reclaimable_usd") or 0.0,
        "dup_usd": dup,
        "dup_calls": 1 if dup > 0 else 0,
        "cache_usd": cache,
        "cache_calls": 1 if cache > 0 else 0,
        "_key": {
            "model": get("model") or NULL_KEY,
            "provider": get("provider") or NULL_KEY,
            "bucket": int(get("ts") // QUARTER_HOUR),
            "route": get("route"),
        },
        "_extra": {"label": get("route_label"), "first_seen": get("ts"), "last_seen": get("ts")},
    }


def deltas(traces: Iterable[Any], sign: int = 1) -> dict[Table, list[tuple]]:
    """Per table, the rows to add (sign=1) or subtract (sign=-1), sorted by key so
    concurrent writers upsert in the same order."""
    acc: dict[Table, dict[tuple, dict[str, Any]]] = {t: {} for t in TABLES}
    for trace in traces:
        v = _values(trace)
        for table in TABLES:
            key = tuple(v["_key"][k] for k in table.keys)
            if None in key:  # no template: not in rollup_routes
                continue
            row = acc[table].get(key)
            if row is None:
                row = acc[table][key] = {**{s: 0 for s in table.sums}, **v["_extra"]}
            for s in table.sums:
                row[s] += sign * v[s]
            if "first_seen" in table.extra:
                row["first_seen"] = min(row["first_seen"], v["_extra"]["first_seen"])
                row["last_seen"] = max(row["last_seen"], v["_extra"]["last_seen"])
                row["label"] = v["_extra"]["label"] or row["label"]
    return {
        table: [
            (*key, *(row[e] for e in table.extra), *(row[s] for s in table.sums))
            for key, row in sorted(rows.items())
        ]
        for table, rows in acc.items()
    }


def model_key(value: str) -> str | None:
    """A rollup key back to what the contract returns (None for a missing model)."""
    return None if value == NULL_KEY else value
