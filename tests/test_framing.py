"""The whole-body readers (`sse.events_of`, `streams.ndjson_events`, `streams.array_values`)
and `load_json`'s fast path give exactly what their incremental or plain versions give:
the same events, the same piece indexes (time to first token), the same values."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from addon.providers.base import load_json
from addon.sse import SSEParser, events_of, fed
from addon.streams import JSONArrayParser, NDJSONParser, array_values, ndjson_events

LINES = [
    b'data: {"a": 1}',
    b"data:no space",
    b"data:  two spaces",
    b"data",
    b"data: caf\xc3\xa9 \xe2\x9c\x93",
    b"data: broken \xe2\x82",
    b"event: ping",
    b"event:",
    b"event: a:b",
    b": a comment",
    b"id: 7",
    b"id: a\0b",
    b"retry: 10",
    b"\xff\xfe",
    b"",
    b"",
]
ENDINGS = [b"\n", b"\r\n", b"\r"]


def _pieces(raw: bytes, cuts: list[int]) -> list[bytes]:
    """`raw` cut at `cuts`; repeated cuts give empty pieces, as a network read can."""
    bounds = [0, *sorted(c % (len(raw) + 1) for c in cuts), len(raw)]
    return [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@st.composite
def sse_streams(draw):
    lines = draw(st.lists(st.sampled_from(LINES), max_size=30))
    mixed = draw(st.booleans())
    ending = draw(st.sampled_from(ENDINGS))
    raw = b""
    for line in lines:
        raw += line + (draw(st.sampled_from(ENDINGS)) if mixed else ending)
    if draw(st.booleans()):  # an unterminated last line
        raw += draw(st.sampled_from(LINES))
    return raw


@settings(max_examples=400, deadline=None)
@given(raw=sse_streams(), cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_sse_whole_body_matches_the_incremental_parser(raw, cuts):
    pieces = _pieces(raw, cuts)
    assert list(events_of(pieces)) == list(fed(SSEParser(), pieces))


def test_sse_event_index_is_the_piece_that_held_the_blank_line():
    raw = b"event: a\r\ndata: 1\r\n\r\ndata: 2\n\n"
    # The first blank line's CR ends piece 1; its LF alone is piece 2.
    pieces = [raw[:12], raw[12:20], raw[20:21], raw[21:]]
    assert [(e.data, i) for e, i in events_of(pieces)] == [("1", 1), ("2", 3)]
    assert list(events_of(pieces)) == list(fed(SSEParser(), pieces))


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.sampled_from([b'{"a": 1}', b"  ", b"", b"caf\xc3\xa9", b"\xe2\x82"])),
    tail=st.sampled_from([b"", b' {"b": 2} ', b"\xff"]),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_ndjson_whole_body_matches_the_incremental_framer(lines, tail, cuts):
    pieces = _pieces(b"\n".join(lines) + (b"\n" if lines else b"") + tail, cuts)
    assert list(ndjson_events(pieces)) == list(fed(NDJSONParser(), pieces))


values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab"\\[]{},\n é✓', max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)


def _incremental_objects(pieces: list[bytes]) -> list[tuple[dict, int]]:
    out = [(load_json(e.data), i) for e, i in fed(JSONArrayParser(), pieces)]
    return [(v, i) for v, i in out if isinstance(v, dict)]


@settings(max_examples=300, deadline=None)
@given(
    elements=st.lists(values, max_size=5),
    indent=st.sampled_from([None, 2]),
    cuts=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_json_array_parsed_whole_matches_framing_then_parsing(elements, indent, cuts):
    text = " [" + ",\r\n".join(json.dumps(e, indent=indent, ensure_ascii=False) for e in elements)
    pieces = _pieces((text + "]\n").encode(), cuts)
    assert array_values(pieces) == _incremental_objects(pieces)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b",", b" ", b"1", b"\xc3\xa9"])),
    cuts=st.lists(st.integers(0, 10**6), max_size=6),
)
def test_json_array_anything_unusual_falls_back(raw, cuts):
    pieces = _pieces(b"".join(raw), cuts)
    got = array_values(pieces)
    assert got is None or got == _incremental_objects(pieces)


def _plain_load(text):
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None


@settings(max_examples=400, deadline=None)
@given(
    value=values,
    before=st.sampled_from(["", " ", "\ufeff", "\n"]),
    after=st.sampled_from(["", " \r\n", "x", "\x0c", ",1", "\u00a0"]),
    as_bytes=st.sampled_from([None, "utf-8", "utf-16", "utf-16-le", "utf-32"]),
)
def test_load_json_is_json_loads_or_none(value, before, after, as_bytes):
    text = before + json.dumps(value, ensure_ascii=False) + after
    data = text if as_bytes is None else text.encode(as_bytes)
    assert load_json(data) == _plain_load(data)


@given(st.binary(max_size=40))
def test_load_json_of_any_bytes(data):
    assert load_json(data) == _plain_load(data)
    assert load_json(b"{" + data) == _plain_load(b"{" + data)
