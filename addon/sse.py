"""An incremental Server-Sent Events parser.

Fed raw (already content-decoded) bytes in whatever pieces the network gave,
it yields complete events. Lines may end in CRLF, LF or CR, and a piece may end
anywhere: mid-line, mid-UTF-8 sequence, or between the CR and LF of one line
ending. Events follow the WHATWG rules: `data:` lines join with newlines, a
blank line dispatches, lines starting with `:` are comments.

`events_of` reads a whole captured stream at once, with the index of the network
piece that completed each event: the same events and indexes as feeding the
parser piece by piece, for a fraction of the per-line work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# A line longer than this is a broken stream, not an event: drop it rather than
# grow without bound.
MAX_LINE = 16 * 1024 * 1024


@dataclass(slots=True)
class Event:
    event: str  # "message" when the stream named none
    data: str
    id: str | None = None


class SSEParser:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip_lf = False  # the previous piece ended in CR: a leading LF belongs to it
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.oversized_lines = 0

    def feed(self, piece: bytes) -> Iterator[Event]:
        """Consume `piece`; yield every event it completes."""
        if not piece:
            return
        if self._skip_lf:
            self._skip_lf = False
            if piece[:1] == b"\n":
                piece = piece[1:]
        buf = self._buf
        buf += piece
        start = 0
        n = len(buf)
        while start < n:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    nxt = cr + 1
                    self._skip_lf = True
            event = self._line(bytes(buf[start:end]))
            if event is not None:
                yield event
            start = nxt
        del buf[:start]
        if len(buf) > MAX_LINE:
            self.oversized_lines += 1
            buf.clear()

    def close(self) -> Iterator[Event]:
        """End of stream: a final unterminated line and pending event still count
        (a lenient reading; a truncated stream keeps what it carried)."""
        if self._buf:
            event = self._line(bytes(self._buf))
            self._buf.clear()
            if event is not None:
                yield event
        if self._data:
            yield self._dispatch()

    def _line(self, raw: bytes) -> Event | None:
        if not raw:
            if self._data:
                return self._dispatch()
            self._event = ""  # an event with no data is not dispatched
            return None
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> Event:
        event = Event(self._event or "message", "\n".join(self._data), self._id)
        self._event = ""
        self._data = []
        return event


def events_of(pieces: Sequence[bytes]) -> Iterator[tuple[Event, int]]:
    """Every event of a captured stream, with the index of the piece that completed it.

    One pass over the joined bytes, split on the blank lines that end events. A
    stream whose lines do not all end alike (bare CR, or CR and LF mixed) goes
    through the incremental parser instead, as does one too large to hold whole.
    """
    body = b"".join(pieces)
    sep = _line_ending(body)
    if sep is None or len(body) > MAX_LINE:
        yield from fed(SSEParser(), pieces)
        return
    state = SSEParser()
    blocks = body.split(sep + sep)
    tail = blocks.pop()  # no blank line after it: only `close()` dispatches what it holds
    ends = piece_ends(pieces)
    chunk = pos = 0
    for block in blocks:
        # The byte that ends the dispatching blank line (its CR or LF) completes the event.
        done = pos + len(block) + len(sep)
        pos = done + len(sep)
        if block[:6] == b"data: " and b"\n" not in block:  # the common one-line event
            event: Event | None = Event("message", block[6:].decode("utf-8", "replace"), state._id)
        else:
            event = _named(block, sep, state._id)
        if event is None:
            # A block holds no blank line but maybe a leading one, a no-op there
            # (nothing is pending after the previous block's blank line).
            for line in block.split(sep):
                state._line(line)
            event = state._line(b"")
            if event is None:
                continue
        while ends[chunk] <= done:
            chunk += 1
        yield event, chunk
    *lines, last = tail.split(sep)
    for line in lines:
        state._line(line)
    state._buf += last  # the unterminated line, which `close()` reads as the last one
    for event in state.close():
        yield event, len(pieces) - 1


def _named(block: bytes, sep: bytes, last_id: str | None) -> Event | None:
    """`event: <name>` then one `data: ` line, the other common shape; else None."""
    if block[:7] != b"event: ":
        return None
    nl = block.find(sep)
    data = nl + len(sep)
    if nl < 0 or block[data : data + 6] != b"data: " or block.find(b"\n", data) >= 0:
        return None
    name = block[7:nl].decode("utf-8", "replace") or "message"
    return Event(name, block[data + 6 :].decode("utf-8", "replace"), last_id)


def _line_ending(body: bytes) -> bytes | None:
    """The one line ending every line of `body` uses, or None when they differ."""
    if b"\r" not in body:
        return b"\n"
    crlf = body.count(b"\r\n")
    if body.count(b"\r") == crlf == body.count(b"\n"):
        return b"\r\n"
    return None


def piece_ends(pieces: Sequence[bytes]) -> list[int]:
    """Where each piece ends in the joined bytes."""
    ends, total = [], 0
    for piece in pieces:
        total += len(piece)
        ends.append(total)
    return ends


def fed(parser: Any, pieces: Sequence[bytes]) -> Iterator[tuple[Event, int]]:
    """What an incremental framer (`feed` and `close`) yields, piece by piece."""
    for i, piece in enumerate(pieces):
        for event in parser.feed(piece):
            yield event, i
    for event in parser.close():
        yield event, len(pieces) - 1
