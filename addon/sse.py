"""An incremental Server-Sent Events parser.

Fed raw (already content-decoded) bytes in whatever pieces the network gave,
it yields complete events. Lines may end in CRLF, LF or CR, and a piece may end
anywhere: mid-line, mid-UTF-8 sequence, or between the CR and LF of one line
ending. Events follow the WHATWG rules: `data:` lines join with newlines, a
blank line dispatches, lines starting with `:` are comments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
