"""Streams of thousands of events: the text comes back whole and in order, and time to
first token is still the piece that carried the first content (not a later one)."""

from __future__ import annotations

import json

from addon.capture import Exchange
from addon.extract import build_trace

T0 = 1_700_000_000.0
N = 5000
WORDS = [f"w{i} é✓ " for i in range(N)]  # non-ASCII too: piece offsets are bytes
TEXT = "".join(WORDS)


def _exchange(host: str, path: str, request: dict, pieces: list[bytes], ctype: str) -> Exchange:
    return Exchange(
        uid="long", ts=T0, method="POST", host=host, port=443, path=path,
        request_headers={}, request_body=json.dumps(request).encode(), request_encoding=None,
        session_hint=None, status=200, content_type=ctype, chunks=pieces,
        chunk_times=[T0 + 0.001 * (k + 1) for k in range(len(pieces))], end_ts=T0 + 60,
    )  # fmt: skip


def _trace(*args):
    trace, problems = build_trace(_exchange(*args), estimator=None)
    assert problems == []
    return trace


def _data(obj: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def test_openai_chat_long_stream_with_tool_arguments():
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    pieces = [_data({"id": "c", "model": "gpt-4o", **role})]
    pieces += [_data({"choices": [{"index": 0, "delta": {"content": w}}]}) for w in WORDS]
    call = {"index": 0, "id": "t1", "function": {"name": "grep", "arguments": ""}}
    pieces.append(_data({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))
    for w in WORDS[:100]:
        call = {"index": 0, "function": {"arguments": w}}
        pieces.append(_data({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))
    pieces.append(b"data: [DONE]\n\n")
    t = _trace(
        "api.openai.com", "/v1/chat/completions", {"stream": True}, pieces, "text/event-stream"
    )
    message = t.response["choices"][0]["message"]
    assert message["content"] == TEXT
    assert message["tool_calls"][0]["function"] == {
        "name": "grep",
        "arguments": "".join(WORDS[:100]),
    }
    assert t.called_tools == ["grep"]
    assert t.ttft_ms == 2.0  # the role-only first event carries no content: the second piece


def test_anthropic_long_stream_text_and_thinking():
    start = {"type": "message_start", "message": {"model": "claude-x", "usage": {}}}
    pieces = [_data(start, "message_start")]
    pieces.append(_data({"type": "ping"}, "ping"))
    for index, kind in enumerate(("thinking", "text")):
        block = {"type": "content_block_start", "index": index, "content_block": {"type": kind}}
        pieces.append(_data(block, "content_block_start"))
        for w in WORDS:
            delta = {"type": f"{kind}_delta", kind: w}
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            pieces.append(_data(event, "content_block_delta"))
    pieces.append(_data({"type": "message_stop"}, "message_stop"))
    body = b"".join(pieces)  # one read that held everything: TTFT is that piece
    t = _trace("api.anthropic.com", "/v1/messages", {"stream": True}, pieces, "text/event-stream")
    assert [b.get("thinking") or b.get("text") for b in t.response["content"]] == [TEXT, TEXT]
    assert t.ttft_ms == 4.0
    t = _trace("api.anthropic.com", "/v1/messages", {"stream": True}, [body], "text/event-stream")
    assert t.response["content"][1]["text"] == TEXT and t.ttft_ms == 1.0


def test_responses_long_stream_cut_before_the_end_is_rebuilt():
    created = {"type": "response.created", "response": {"id": "r", "model": "gpt-5"}}
    pieces = [f"event: response.created\ndata: {json.dumps(created, separators=(',', ':'))}\n\n"]
    item = {"type": "message", "role": "assistant", "content": []}
    added = {"type": "response.output_item.added", "output_index": 0, "item": item}
    pieces.append(f"event: {added['type']}\ndata: {json.dumps(added)}\n\n")
    for w in WORDS:
        delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}
        pieces.append(f"data: {json.dumps(delta | {'delta': w}, ensure_ascii=False)}\n\n")
    raw = [p.encode() for p in pieces]
    t = _trace("api.openai.com", "/v1/responses", {"stream": True}, raw, "text/event-stream")
    assert t.model == "gpt-5"  # from the snapshot event, the only place naming it
    assert t.response["id"] == "r"
    assert t.response["output"][0]["content"] == [{"type": "output_text", "text": TEXT}]
    assert t.ttft_ms == 3.0


def test_gemini_long_streams_merge_text_sse_and_json_array():
    def chunk(parts: list, finish: bool = False) -> dict:
        cand = {"content": {"role": "model", "parts": parts}, "index": 0}
        return {"candidates": [cand | ({"finishReason": "STOP"} if finish else {})]}

    chunks = [chunk([{"text": "Thinking", "thought": True}])]
    chunks += [chunk([{"text": w}]) for w in WORDS[:-1]] + [chunk([{"text": WORDS[-1]}], True)]
    sse = [f"data: {json.dumps(c, ensure_ascii=False)}\r\n\r\n".encode() for c in chunks]
    array = [
        ("[" if i == 0 else ",\r\n") + json.dumps(c, ensure_ascii=False)
        for i, c in enumerate(chunks)
    ]
    array[-1] += "]"
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    for pieces, ctype in (
        (sse, "text/event-stream"),
        ([a.encode() for a in array], "application/json"),
    ):
        t = _trace("generativelanguage.googleapis.com", path, {}, pieces, ctype)
        assert t.response["candidates"][0]["content"]["parts"] == [
            {"text": "Thinking", "thought": True},
            {"text": TEXT},
        ]
        assert t.ttft_ms == 1.0


def test_ollama_long_ndjson_stream():
    lines = [{"model": "qwen3", "message": {"role": "assistant", "content": w}} for w in WORDS]
    lines.append({"model": "qwen3", "message": {"content": ""}, "done": True, "eval_count": N})
    pieces = [json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in lines]
    t = _trace("localhost", "/api/chat", {"model": "qwen3"}, pieces, "application/x-ndjson")
    assert t.response["message"]["content"] == TEXT
    assert t.completion_tokens == N and t.ttft_ms == 1.0


def test_malformed_blocks_do_not_lose_the_call():
    """A text block whose `text` is null, then deltas to it (Anthropic); an output
    item whose `content` is not a list, then text for it (Responses): the call is
    still recorded, with the text that arrived."""
    start = {"type": "message_start", "message": {"model": "claude-x", "usage": {}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
             "text": None}}  # fmt: skip
    delta = {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "hi"}}  # fmt: skip
    pieces = [_data(e, e["type"]) for e in (start, block, delta)]
    t = _trace("api.anthropic.com", "/v1/messages", {"stream": True}, pieces, "text/event-stream")
    assert t.response["content"][0]["text"] == "hi"

    added = {"type": "response.output_item.added", "output_index": 0,
             "item": {"type": "message", "content": "oops"}}  # fmt: skip
    text = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
            "delta": "hello"}  # fmt: skip
    pieces = [_data(e, e["type"]) for e in (added, text)]
    t = _trace("api.openai.com", "/v1/responses", {"stream": True}, pieces, "text/event-stream")
    assert t.response["output"][0]["content"][0]["text"] == "hello"
