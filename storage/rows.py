"""Row shaping shared by the backends: driver rows in, plain dicts out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .trace import BODY_FIELDS, JSON_SCALAR_FIELDS, SCALAR_FIELDS, Trace

# Columns listed by recent(): everything but the bodies.
LIST_COLUMNS = ("id", *SCALAR_FIELDS, *JSON_SCALAR_FIELDS, "session_id", "turn")
INSERT_COLUMNS = (*SCALAR_FIELDS, *JSON_SCALAR_FIELDS, "session_id", "turn")
HIDDEN = ("session_hint", "conv_fp", "reply_fp")  # internal, never returned


def dumps(value: Any) -> str | None:
    """Compact JSON text, or None for None (so SQL NULL stays NULL)."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def loads(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value
    return json.loads(value)


def prepare(trace: Trace) -> Trace:
    """Encode the trace's JSON columns once, ahead of `record_many` (call it where CPU
    time is cheap: the writer's worker thread). Returns the trace."""
    trace.encoded = (
        dumps(trace.components or {}),
        dumps(list(trace.called_tools or [])),
        tuple(None if (v := getattr(trace, name)) is None else dumps(v) for name in BODY_FIELDS),
    )
    return trace


def insert_values(trace: Trace, session_id: str | None, turn: int | None) -> tuple:
    """The INSERT_COLUMNS values of a trace, JSON columns encoded as text."""
    values: list[Any] = [getattr(trace, name) for name in SCALAR_FIELDS]
    values[SCALAR_FIELDS.index("streamed")] = bool(trace.streamed)
    encoded = trace.encoded or prepare(trace).encoded
    values.extend((encoded[0], encoded[1], session_id, turn))
    return tuple(values)


def body_values(trace: Trace) -> tuple:
    return (trace.encoded or prepare(trace).encoded)[2]


def trace_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A listing row as the contract returns it."""
    out = {k: row[k] for k in LIST_COLUMNS if k not in HIDDEN}
    out["streamed"] = bool(out["streamed"])
    out["components"] = loads(out["components"]) or {}
    out["called_tools"] = loads(out["called_tools"]) or []
    return out


def with_bodies(item: dict[str, Any], row: Mapping[str, Any] | None) -> dict[str, Any]:
    for name in BODY_FIELDS:
        item[name] = loads(row[name]) if row is not None else None
    return item
