"""The SSE parser: events survive any split of the byte stream."""

from hypothesis import given, settings
from hypothesis import strategies as st

from addon.sse import Event, SSEParser

STREAM = (
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b": a comment\n"
    b"data: line one\ndata: line two\n\n"
    b"event: ping\rdata: {}\r\r"
    b"id: 7\ndata: caf\xc3\xa9 \xe2\x9c\x93\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    Event("message_start", '{"a": 1}'),
    Event("message", "line one\nline two"),
    Event("ping", "{}"),
    Event("message", "café ✓", "7"),
    Event("message", "[DONE]", "7"),
]


def parse(pieces):
    p = SSEParser()
    out = [e for piece in pieces for e in p.feed(piece)]
    return out + list(p.close())


def test_whole_stream():
    assert parse([STREAM]) == EXPECTED


def test_byte_by_byte_including_crlf_and_utf8_splits():
    assert parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_split_gives_the_same_events(cuts):
    cuts = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
    assert parse(pieces) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_never_raises(data):
    p = SSEParser()
    for i in range(0, len(data), 7):
        list(p.feed(data[i : i + 7]))
    list(p.close())


def test_unterminated_last_event_is_kept_on_close():
    assert parse([b'data: {"partial": true}']) == [Event("message", '{"partial": true}')]


def test_event_without_data_is_not_dispatched():
    assert parse([b"event: lonely\n\ndata: x\n\n"]) == [Event("message", "x")]
