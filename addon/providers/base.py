"""What every provider parser returns, and the helpers they share.

A provider module turns one API shape's bytes into a `Result`: the model, the
usage in llmprof's single token convention (see `storage.trace`), the tools the
model called, the reassembled response and any provider error. Parsers are pure
and lenient: a field that is missing or of the wrong type is left unset, never
guessed and never raised on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import Any

# One JSON value at an offset: what json.loads runs under its argument checks and
# whitespace skipping, which cost as much again on a small stream event.
_scan = make_scanner(json.JSONDecoder())


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None = None  # all input, cache reads and writes included
    completion_tokens: int | None = None  # all output, reasoning included
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    raw: Any = None  # the provider's usage object as received


@dataclass(slots=True)
class Result:
    model: str | None = None
    usage: Usage | None = None
    called_tools: list[str] = field(default_factory=list)
    response: Any = None  # the JSON body, or the message reassembled from a stream
    error: str | None = None  # "type: message" from the provider's error body or event
    first_content_chunk: int | None = None  # streams: network chunk of the first content event
    finished: bool = False  # the body parsed / the stream reached its terminal event
    output_text: str = ""  # the text (and tool arguments) the model produced, for estimates


def as_int(value: Any) -> int | None:
    """A non-negative int from a JSON number, else None (bools are not counts)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def load_json(text: str | bytes) -> Any:
    """json.loads that returns None instead of raising."""
    if type(text) is bytes and text[:1] in (b"{", b"[") and text[1:2] != b"\0":
        # What json.loads makes of bytes with no BOM and no UTF-16/32 zero byte up front.
        try:
            text = text.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return None
    if type(text) is str:
        try:
            value, end = _scan(text, 0)
        except StopIteration:  # leading whitespace, a BOM, nothing: json.loads decides
            pass
        except (ValueError, RecursionError):
            return None
        else:  # then json.loads would allow only JSON whitespace after the value
            return value if end == len(text) or not text[end:].strip(" \t\n\r") else None
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None


def pick(d: dict[str, Any], camel: str, snake: str) -> Any:
    """A field that may arrive camelCase or snake_case (proto3 JSON accepts both)."""
    value = d.get(camel)
    return d.get(snake) if value is None else value


def add_tool(tools: list[str], name: Any) -> None:
    if isinstance(name, str) and name and name not in tools:
        tools.append(name)


def sum_known(*values: int | None) -> int | None:
    """The sum of the counts present; None when none is."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
