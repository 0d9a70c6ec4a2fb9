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
from operator import add
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


# Every summed quantity, in one order; each table sums a subset (_PICK).
ALL_SUMS = (
    "calls", "unpriced_calls", "prompt_tokens", "prompt_calls", "completion_tokens",
    "cached_tokens", "total_tokens", "cost_usd", "reclaimable_usd", "dup_usd", "dup_calls",
    "cache_usd", "cache_calls",
)  # fmt: skip
_PICK = {t: [ALL_SUMS.index(s) for s in t.sums] for t in TABLES}


def _row(t: Any) -> tuple:
    """`(model, provider, bucket, route, label, ts, values in ALL_SUMS order)`."""
    get = t.get if isinstance(t, dict) else t.__getattribute__
    cost, prompt = get("cost_usd"), get("prompt_tokens")
    dup, cache = get("reclaim_dup_usd") or 0.0, get("reclaim_cache_usd") or 0.0
    ts = get("ts")
    values = (
        1, 1 if cost is None and get("outcome") == "ok" else 0, prompt or 0,
        0 if prompt is None else 1, get("completion_tokens") or 0, get("cached_tokens") or 0,
        get("total_tokens") or 0, cost or 0.0, get("reclaimable_usd") or 0.0, dup,
        1 if dup > 0 else 0, cache, 1 if cache > 0 else 0,
    )  # fmt: skip
    model = get("model") or NULL_KEY
    return (
        model,
        get("provider") or NULL_KEY,
        int(ts // QUARTER_HOUR),
        get("route"),
        get("route_label"),
        ts,
        values,
    )


def deltas(traces: Iterable[Any], sign: int = 1) -> dict[Table, list[tuple]]:
    """Per table, the rows to add (sign=1) or subtract (sign=-1), sorted by key so
    concurrent writers upsert in the same order. Accepts Trace objects or dicts."""
    # First sum the batch per (model, provider, bucket, route), the finest key: a batch
    # has far fewer of those than traces, and the tables fold from them.
    groups: dict[tuple, list] = {}
    for trace in traces:
        model, provider, bucket, route, label, ts, values = _row(trace)
        g = groups.get((model, provider, bucket, route))
        if g is None:
            groups[(model, provider, bucket, route)] = [values, label, ts, ts]
            continue
        g[0] = tuple(map(add, g[0], values))
        if ts < g[2]:
            g[2] = ts
        elif ts > g[3]:
            g[3] = ts
        if label:
            g[1] = label
    acc: dict[Table, dict[tuple, list]] = {t: {} for t in TABLES}
    for (model, provider, bucket, route), (values, label, lo, hi) in groups.items():
        keys = (
            (MODELS, (model, provider)),
            (BUCKETS, (bucket,)),
            (ROUTES, (route, model) if route else None),
        )
        for table, key in keys:
            if key is None:  # no template: not in rollup_routes
                continue
            picked = [values[i] for i in _PICK[table]]
            entry = acc[table].get(key)
            if entry is None:
                acc[table][key] = [picked, label, lo, hi]
                continue
            entry[0] = list(map(add, entry[0], picked))
            entry[2], entry[3] = min(entry[2], lo), max(entry[3], hi)
            if label:
                entry[1] = label
    out = {}
    for table, rows in acc.items():
        extra = bool(table.extra)
        out[table] = [
            (*key, *((e[1], e[2], e[3]) if extra else ()), *(sign * v for v in e[0]))
            for key, e in sorted(rows.items())
        ]
    return out
