"""Incremental framers for the JSON streams that are not SSE.

- NDJSON (Ollama's native API): one JSON value per line.
- A JSON array sent element by element (Gemini `streamGenerateContent` without
  `alt=sse`): `[{...}\\r\\n,{...}\\r\\n]`.

Both take content-decoded bytes in whatever pieces the network gave and yield
each complete value as an `sse.Event` (`event="message"`, `data=` its JSON text),
so provider stream parsers read every framing alike and can tell which network
chunk completed the value (for time to first token).

`ndjson_events` and `array_values` read a whole captured body at once, with the
same results and piece indexes as the incremental framers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from json.scanner import make_scanner
from typing import Any

from .sse import MAX_LINE, Event, fed, piece_ends

# Bytes that matter to the array scanner outside a string, and inside one.
_OUTSIDE = re.compile(rb'["\[\]{}]')
_INSIDE = re.compile(rb'["\\]')
_scan = make_scanner(json.JSONDecoder())  # one JSON value at an offset
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def ndjson_events(pieces: Sequence[bytes]) -> Iterator[tuple[Event, int]]:
    """Each line of an NDJSON body as an event, with the index of the piece that ended it."""
    body = b"".join(pieces)
    if len(body) > MAX_LINE:  # the incremental framer drops an overlong line
        yield from fed(NDJSONParser(), pieces)
        return
    *lines, tail = body.split(b"\n")
    ends = piece_ends(pieces)
    chunk = start = 0
    for line in lines:
        newline, start = start + len(line), start + len(line) + 1
        if line.strip():
            while ends[chunk] <= newline:  # the piece holding the newline ended the line
                chunk += 1
            yield Event("message", line.decode("utf-8", errors="replace").strip()), chunk
    if tail.strip():
        yield Event("message", tail.decode("utf-8", errors="replace").strip()), len(pieces) - 1


def array_values(pieces: Sequence[bytes]) -> list[tuple[dict[str, Any], int]] | None:
    """The object elements of a body that is one well-formed JSON array, parsed, each
    with the index of the piece that closed it; None for any other body.

    Only objects are returned: the array's other elements mean nothing to a parser.
    Anything unusual (not an array, invalid JSON or UTF-8, too large) is None, and
    the caller falls back to `JSONArrayParser`, which is lenient about it.
    """
    body = b"".join(pieces)
    if len(body) > MAX_LINE:
        return None
    text = body.decode("utf-8", errors="replace")
    ascii_only = text.isascii()
    if not ascii_only and "\ufffd" in text:  # byte offsets are no longer recoverable
        return None
    pos = _JSON_SPACE.match(text).end()
    if text[pos : pos + 1] != "[":
        return None
    pos = _JSON_SPACE.match(text, pos + 1).end()
    ends, out = piece_ends(pieces), []
    chunk = mark = mark_byte = 0
    closing = text[pos : pos + 1] == "]"
    while not closing:
        try:
            value, end = _scan(text, pos)
        except (StopIteration, ValueError, RecursionError):
            return None
        if isinstance(value, dict):
            # The piece that holds the element's closing byte (end - 1) completed it.
            if ascii_only:
                mark_byte = end
            else:
                mark_byte += len(text[mark:end].encode())
                mark = end
            while ends[chunk] < mark_byte:
                chunk += 1
            out.append((value, chunk))
        pos = _JSON_SPACE.match(text, end).end()
        if text[pos : pos + 1] not in (",", "]"):
            return None
        closing = text[pos] == "]"
        if not closing:
            pos = _JSON_SPACE.match(text, pos + 1).end()
    if _JSON_SPACE.match(text, pos + 1).end() != len(text):
        return None
    return out


class NDJSONParser:
    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, piece: bytes) -> Iterator[Event]:
        self._buf += piece
        if b"\n" not in piece:
            if len(self._buf) > MAX_LINE:
                self._buf.clear()
            return
        *lines, rest = bytes(self._buf).split(b"\n")
        self._buf = bytearray(rest)
        for line in lines:
            if line.strip():
                yield Event("message", line.decode("utf-8", errors="replace").strip())

    def close(self) -> Iterator[Event]:
        if self._buf.strip():
            yield Event("message", self._buf.decode("utf-8", errors="replace").strip())
        self._buf.clear()


class JSONArrayParser:
    """Yields the elements of a top-level JSON array as each one completes.

    A body that is not an array (an error object) is yielded whole at `close()`.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # next byte of _buf to scan
        self._depth = 0  # nesting, the outer array included
        self._in_string = False
        self._start = -1  # where the current element began in _buf
        self._array: bool | None = None  # None until the first significant byte

    def feed(self, piece: bytes) -> Iterator[Event]:
        self._buf += piece
        if self._array is None:
            head = bytes(self._buf).lstrip()
            if not head:
                return
            self._array = head[:1] == b"["
        if not self._array:
            return
        buf = self._buf
        pos = self._pos
        while True:
            if self._in_string:
                m = _INSIDE.search(buf, pos)
                if m is None:
                    pos = len(buf)
                    break
                if buf[m.start()] == 0x5C:  # backslash: skip the escaped byte
                    if m.start() + 1 >= len(buf):
                        pos = m.start()  # resume at the backslash once more arrives
                        break
                    pos = m.start() + 2
                    continue
                self._in_string = False
                pos = m.end()
                continue
            m = _OUTSIDE.search(buf, pos)
            if m is None:
                pos = len(buf)
                break
            ch, pos = buf[m.start()], m.end()
            if ch == 0x22:  # "  (a string: only ever inside an element here)
                self._in_string = True
            elif ch in (0x5B, 0x7B):  # [ {
                self._depth += 1
                if self._depth == 2 and self._start < 0:
                    self._start = m.start()
            else:  # ] }
                self._depth -= 1
                if self._depth == 1 and self._start >= 0:
                    yield self._emit(pos)
                    pos = 0
                    buf = self._buf
        self._pos = pos
        if self._start < 0 and self._depth <= 1:
            # Between elements: drop what was scanned (commas, whitespace).
            del self._buf[:pos]
            self._pos = 0
        if len(self._buf) > MAX_LINE * 4:
            self._buf.clear()
            self._pos, self._start = 0, -1

    def _emit(self, end: int) -> Event:
        text = bytes(self._buf[self._start : end])
        del self._buf[:end]
        self._start = -1
        return Event("message", text.decode("utf-8", errors="replace"))

    def close(self) -> Iterator[Event]:
        if self._array is False:
            text = bytes(self._buf).strip()
            if text:
                yield Event("message", text.decode("utf-8", errors="replace"))
        self._buf.clear()
