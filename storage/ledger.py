"""The per-template tool ledger (`route_tools`), shared by every backend.

Each call reports, per tool it shipped, the schema's tokens, whether the tool was
called, and its cost net of any caching saving claimed on the call. The store
sums them per (template, tool) in the same transaction as the trace, so "shipped
in N calls of this template and never called" is one indexed lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

from .trace import Trace

# (route, tool, label, shipped, called, tokens, residual_usd, first_seen, last_seen)
LedgerRow = tuple[str, str, str | None, int, int, int, float, float, float]
COLUMNS = (
    "route", "tool", "label", "shipped", "called", "tokens", "residual_usd",
    "first_seen", "last_seen",
)  # fmt: skip


def ledger_rows(traces: Sequence[Trace]) -> list[LedgerRow]:
    """A batch's additions, one row per (route, tool), sorted so concurrent writers
    upsert in the same order (no deadlocks)."""
    acc: dict[tuple[str, str], list] = {}
    for t in traces:
        if not t.route:
            continue
        for use in t.tool_usage or []:
            name = use.get("tool")
            if not isinstance(name, str) or not name:
                continue
            row = acc.get((t.route, name))
            if row is None:
                row = acc[(t.route, name)] = [t.route_label, 0, 0, 0, 0.0, t.ts, t.ts]
            row[1] += 1
            row[2] += 1 if use.get("called") else 0
            row[3] += int(use.get("tokens") or 0)
            row[4] += float(use.get("residual_usd") or 0.0)
            row[5], row[6] = min(row[5], t.ts), max(row[6], t.ts)
    return [(route, tool, *vals) for (route, tool), vals in sorted(acc.items())]
