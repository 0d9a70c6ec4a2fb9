"""Wire-level pieces: the NDJSON and JSON-array framers, compressed streams (br, zstd,
deflate), token estimates, and `llmprof_inject_usage` (the request change and the stripper
that gives the client back exactly the stream it asked for)."""

from __future__ import annotations

import json
import zlib

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from addon import capture, inject
from addon.estimate import prompt_text
from addon.streams import JSONArrayParser, NDJSONParser
from tests.support.flows import make_flow, run, sse

json_objects = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(alphabet='ab"\\[]{},\n é\u2028', max_size=12),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)


def _pieces(raw: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted({c % (len(raw) + 1) for c in cuts})
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=150, deadline=None)
@given(
    objs=st.lists(json_objects, min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
    indent=st.sampled_from([None, 2]),
)
def test_json_array_framer_any_split(objs, cuts, indent):
    raw = (
        "[" + ",\r\n".join(json.dumps(o, indent=indent, ensure_ascii=False) for o in objs) + "]\n"
    ).encode()
    parser, out = JSONArrayParser(), []
    for piece in _pieces(raw, cuts):
        out += [json.loads(e.data) for e in parser.feed(piece)]
    out += [json.loads(e.data) for e in parser.close()]
    assert out == objs


@settings(max_examples=100, deadline=None)
@given(
    objs=st.lists(json_objects, min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
)
def test_ndjson_framer_any_split(objs, cuts):
    raw = b"".join(json.dumps(o).encode() + b"\n" for o in objs)
    parser, out = NDJSONParser(), []
    for piece in _pieces(raw, cuts):
        out += [json.loads(e.data) for e in parser.feed(piece)]
    out += [json.loads(e.data) for e in parser.close()]
    assert out == objs


def test_json_array_framer_passes_a_non_array_whole():
    parser = JSONArrayParser()
    assert list(parser.feed(b'{"error": {"code"')) == []
    assert [json.loads(e.data) for e in (*parser.feed(b": 1}}"), *parser.close())] == [
        {"error": {"code": 1}}
    ]


# --------------------------------------------------------------------------- encodings

CHAT_CHUNKS = [
    {"model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
    {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}},
]


def _encoders():
    def zlib_stream(wbits):
        def enc(pieces):
            z = zlib.compressobj(6, zlib.DEFLATED, wbits)
            out = [z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH) for p in pieces]
            return [*out, z.flush()]

        return enc

    def br(pieces):
        c = brotli.Compressor()
        return [c.process(p) + c.flush() for p in pieces] + [c.finish()]

    def zstd(pieces):
        c = zstandard.ZstdCompressor().compressobj()
        return [c.compress(p) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for p in pieces] + [
            c.flush()
        ]

    return {
        "gzip": zlib_stream(31),
        "deflate": zlib_stream(15),
        "raw-deflate": zlib_stream(-15),
        "br": br,
        "zstd": zstd,
    }


@pytest.mark.parametrize("name", ["gzip", "deflate", "raw-deflate", "br", "zstd"])
@pytest.mark.parametrize("streamed", [True, False])
def test_compressed_bodies_streamed_and_not(name, streamed):
    encoding = "deflate" if name == "raw-deflate" else name
    if streamed:
        plain = [sse(c) for c in CHAT_CHUNKS] + [b"data: [DONE]\n\n"]
        ctype, req = "text/event-stream", {"model": "gpt-4o", "stream": True}
    else:
        body = {"model": "gpt-4o", "choices": [], "usage": CHAT_CHUNKS[1]["usage"]}
        text = json.dumps(body).encode()
        plain = [text[:10], text[10:]]
        ctype, req = "application/json", {"model": "gpt-4o"}
    flow = make_flow("api.openai.com", "/v1/chat/completions", req, ctype=ctype, encoding=encoding)
    _, t, problems = run(flow, _encoders()[name](plain))
    assert problems == []
    assert (t.prompt_tokens, t.completion_tokens, t.usage_source) == (12, 1, "provider")


# --------------------------------------------------------------------------- estimates


def test_prompt_text_reads_every_shape_and_skips_media():
    png = "data:image/png;base64," + "A" * 2000
    req = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    text, extra = prompt_text(req)
    assert "Be brief." in text and "What is this?" in text and "AAAA" not in text
    assert '"name":"f"' in text and extra == 3 + 2 * 3
    gemini = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "hi"},
                    {"inlineData": {"mimeType": "image/png", "data": "QUJD" * 300}},
                ],
            }
        ],
    }
    text, extra = prompt_text(gemini)
    assert text.split("\n") == ["sys", "user", "hi"] and extra == 3 + 3
    assert prompt_text({"input": [[1, 2, 3], [4, 5]]}) == ("", 3 + 5)  # token ids count as is
    assert prompt_text("nope") == ("", 0)


def test_estimator_seam_and_failures():
    flow = make_flow(
        "api.openai.com",
        "/v1/chat/completions",
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        ctype="text/event-stream",
    )
    raw = sse({"model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "ok!"}}]})
    _, t, _ = run(flow, [raw], estimator=lambda provider, model, text: len(text))
    assert (t.usage_source, t.completion_tokens, t.prompt_tokens) == ("estimated", 3, 7 + 6)

    def broken(provider, model, text):
        raise RuntimeError("no tokenizer")

    flow = make_flow(
        "api.openai.com", "/v1/chat/completions", {"stream": True}, ctype="text/event-stream"
    )
    _, t, problems = run(flow, [raw], estimator=broken)
    assert t.usage_source == "none" and problems == ["token estimate: no tokenizer"]


# --------------------------------------------------------------------------- inject usage

HEAD = '"id":"c1","object":"chat.completion.chunk"'
CHOICES = [
    '[{"index":0,"delta":{"role":"assistant","content":""}}]',
    '[{"index":0,"delta":{"content":"\\"usage\\":null"}}]',  # model text that looks like it
    '[{"index":0,"delta":{},"finish_reason":"stop"}]',
]
USAGE = '{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}'
# What include_usage streams look like ("usage":null in every chunk, wherever it sits) ...
WITH_USAGE = [
    f'data: {{{HEAD},"choices":{CHOICES[0]},"usage":null}}\n\n'.encode(),
    f'data: {{{HEAD},"choices":{CHOICES[1]},"usage": null }}\n\n'.encode(),
    f'data: {{"usage":null,{HEAD},"choices":{CHOICES[2]}}}\n\n'.encode(),
    f'data: {{{HEAD},"choices":[],"usage":{USAGE}}}\n\n'.encode(),
    b"data: [DONE]\n\n",
]
# ... and what the client asked for.
WITHOUT_USAGE = (
    f'data: {{{HEAD},"choices":{CHOICES[0]}}}\n\n'
    f'data: {{{HEAD},"choices":{CHOICES[1]} }}\n\n'
    f'data: {{{HEAD},"choices":{CHOICES[2]}}}\n\n'
    "data: [DONE]\n\n"
).encode()


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(0, 10**6), max_size=15))
def test_stripper_gives_the_stream_without_usage_however_split(cuts):
    tee = capture.Tee(1 << 20, inject.UsageStripper())
    raw = b"".join(WITH_USAGE)
    out = b"".join(tee(p) for p in _pieces(raw, cuts) if p) + tee(b"")
    assert out == WITHOUT_USAGE
    assert b"".join(tee.chunks) == raw  # the upstream's bytes are what gets recorded


def _chat_flow(body, host="api.openai.com", **headers):
    req = tutils.treq(
        host=host,
        port=443,
        method=b"POST",
        path=b"/v1/chat/completions",
        headers=http.Headers(content_type="application/json", accept_encoding="gzip", **headers),
        content=json.dumps(body).encode(),
    )
    return tflow.tflow(req=req)


def test_inject_usage_changes_only_streams_that_lack_it():
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"foo": 1}, "messages": []}
    flow = _chat_flow(body)
    original = flow.request.raw_content
    assert inject.inject_usage(flow, "openai", "chat") == original
    sent = json.loads(flow.request.content)
    assert sent == {**body, "stream_options": {"foo": 1, "include_usage": True}}
    assert flow.request.headers["accept-encoding"] == "identity"
    assert flow.request.headers["content-length"] == str(len(flow.request.raw_content))
    unchanged = [
        ({**body, "stream_options": {"include_usage": True}}, "openai", "chat"),
        ({**body, "stream": False}, "openai", "chat"),
        (body, "openrouter", "chat"),  # always sends usage
        (body, "groq", "chat"),
        (body, "openai", "responses"),
        ({**body, "stream_options": "x"}, "openai", "chat"),
    ]
    for req_body, provider, api in unchanged:
        flow = _chat_flow(req_body)
        before = flow.request.raw_content
        assert inject.inject_usage(flow, provider, api) is None
        assert (
            flow.request.raw_content == before and flow.request.headers["accept-encoding"] == "gzip"
        )


def test_injected_request_records_the_clients_body():
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    flow = _chat_flow(body)
    original = inject.inject_usage(flow, "openai", "chat")
    flow.response = tutils.tresp(
        headers=http.Headers(content_type="text/event-stream"), content=b""
    )
    assert inject.can_strip(flow.response)
    tee = capture.Tee(1 << 20, inject.UsageStripper())
    for piece in WITH_USAGE:
        tee(piece)
    tee(b"")
    ex = capture.snapshot(flow, tee, None, original)
    from addon.extract import build_trace

    t, _ = build_trace(ex)
    assert t.request == body and t.usage_source == "provider" and t.prompt_tokens == 5
    gz = tutils.tresp(
        headers=http.Headers(content_type="text/event-stream", content_encoding="gzip")
    )
    assert not inject.can_strip(gz)
