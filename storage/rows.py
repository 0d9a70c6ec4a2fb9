"""Row shaping shared by the backends: driver rows in, plain dicts out."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

import zstandard

from .trace import BODY_FIELDS, JSON_SCALAR_FIELDS, SCALAR_FIELDS, Trace

# Columns listed by recent(): everything but the bodies.
LIST_COLUMNS = ("id", *SCALAR_FIELDS, *JSON_SCALAR_FIELDS, "session_id", "turn")
INSERT_COLUMNS = (*SCALAR_FIELDS, *JSON_SCALAR_FIELDS, "session_id", "turn")
HIDDEN = ("session_hint", "conv_fp", "reply_fp")  # internal, never returned


def _make_encoder():
    """Compact JSON, non-ASCII kept, anything unknown as str(): json.dumps with those
    arguments builds an encoder per call (~1.6 us, a dozen calls per trace); this one
    is built once. No circular-reference check: the documents come from JSON parsing
    and the analysis, which make no cycles (a cycle would end in RecursionError)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)
    c = make(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda v: "".join(c(v, 0))


_encode = _make_encoder()


def dumps(value: Any) -> str | None:
    """Compact JSON text, or None for None (so SQL NULL stays NULL)."""
    if value is None:
        return None
    return _encode(value)


def loads(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value
    return json.loads(value)


# zstd contexts are not thread-safe: one per thread (the API reads from a thread pool).
_zstd = threading.local()
ZSTD_LEVEL = 1  # 6.8 KB of agent-call bodies -> 1.3 KB in ~14 us; higher levels gain ~1 %


def pack_bodies(trace: Trace, raw_request: bytes | None = None) -> bytes | None:
    """The six body documents (BODY_FIELDS) of a trace as one zstd-compressed JSON
    array, or None when it has none. One blob, not six JSON columns: a fifth of the
    bytes, and no database parses JSON on the way in.

    `raw_request`: the request body exactly as parsed into `trace.request` (UTF-8
    JSON), stored as it came rather than serialised again (json.dumps takes twice as
    long as json.loads, and the request is the largest document)."""
    docs = [getattr(trace, name) for name in BODY_FIELDS]
    if all(d is None for d in docs):
        return None
    parts = [
        b"null" if d is None else _encode(d).encode("utf-8", "surrogatepass") for d in docs[1:]
    ]
    request = docs[0]
    if request is not None:
        request = raw_request or _encode(request).encode("utf-8", "surrogatepass")
    parts.insert(0, request or b"null")
    if not hasattr(_zstd, "c"):
        _zstd.c = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return _zstd.c.compress(b"[" + b",".join(parts) + b"]")


def unpack_bodies(blob: bytes) -> list[Any]:
    """pack_bodies' inverse: the documents in BODY_FIELDS order, made JSON-safe."""
    if not hasattr(_zstd, "d"):
        _zstd.d = zstandard.ZstdDecompressor()
    return json_safe_loads(_zstd.d.decompress(bytes(blob)).decode("utf-8", "surrogatepass"))


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_safe_loads(text: str) -> Any:
    """json.loads for stored documents, returning what any JSON encoder can write:
    NaN and Infinity (which Python's JSON reads, but JSON has not) become null, and
    lone surrogates (a client's cut emoji escape) become U+FFFD, as they would in
    any UTF-8 text. Bodies keep them as sent; readers get valid JSON."""
    value = json.loads(text, parse_constant=_no_constant)
    if "\\ud" in text or "\\uD" in text or _SURROGATE.search(text):
        value = _no_surrogates(value)  # rare: only then walk the document
    return value


def _no_constant(_name: str) -> None:
    return None


def _no_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_no_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    return value


def prepare(trace: Trace, raw_request: bytes | None = None) -> Trace:
    """Encode the trace's JSON columns and pack its bodies once, ahead of `record_many`
    (call it where CPU time is cheap: the writer's worker). Returns the trace."""
    trace.encoded = (
        dumps(trace.components or {}),
        dumps(list(trace.called_tools or [])),
        pack_bodies(trace, raw_request),
    )
    return trace


def insert_values(trace: Trace, session_id: str | None, turn: int | None) -> tuple:
    """The INSERT_COLUMNS values of a trace, JSON columns encoded as text."""
    values: list[Any] = [getattr(trace, name) for name in SCALAR_FIELDS]
    values[SCALAR_FIELDS.index("streamed")] = bool(trace.streamed)
    encoded = trace.encoded or prepare(trace).encoded
    values.extend((encoded[0], encoded[1], session_id, turn))
    return tuple(values)


def packed_body(trace: Trace) -> bytes | None:
    return (trace.encoded or prepare(trace).encoded)[2]


def trace_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A listing row as the contract returns it."""
    out = {k: row[k] for k in LIST_COLUMNS if k not in HIDDEN}
    out["streamed"] = bool(out["streamed"])
    out["components"] = loads(out["components"]) or {}
    out["called_tools"] = loads(out["called_tools"]) or []
    return out


def with_bodies(item: dict[str, Any], row: Mapping[str, Any] | None) -> dict[str, Any]:
    """Add the body documents from a trace_bodies row: packed (0005 on), or one column
    each (rows written before)."""
    if row is not None and row["packed"] is not None:
        item.update(zip(BODY_FIELDS, unpack_bodies(row["packed"]), strict=True))
        return item
    for name in BODY_FIELDS:
        value = row[name] if row is not None else None
        item[name] = json_safe_loads(value) if isinstance(value, str) else value
    return item
