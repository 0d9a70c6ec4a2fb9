"""Flow -> Exchange -> Trace, on mitmproxy.test flows: no proxy, no store."""

from __future__ import annotations

import gzip
import json

from mitmproxy.test import tflow, tutils

from addon import capture
from addon.extract import build_trace
from tests.support.flows import T0, make_flow, run, sse

CHAT_REQ = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_openai_json_usage_cached_and_reasoning():
    body = {
        "id": "c1",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "yo",
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 256},
        },
    }
    flow = make_flow("api.openai.com", "/v1/chat/completions", CHAT_REQ)
    ex, t, problems = run(flow, [json.dumps(body).encode()], times=[T0 + 0.4])
    assert problems == []
    assert (t.provider, t.api, t.endpoint, t.host) == (
        "openai",
        "chat",
        "/v1/chat/completions",
        "api.openai.com",
    )
    assert (t.model, t.requested_model, t.status, t.outcome) == (
        "gpt-4o-2024-08-06",
        "gpt-4o",
        200,
        "ok",
    )
    assert (t.prompt_tokens, t.completion_tokens, t.total_tokens) == (1200, 300, 1500)
    assert (t.cached_tokens, t.reasoning_tokens, t.cache_write_tokens) == (1024, 256, None)
    assert t.usage_source == "provider" and t.usage_raw == body["usage"]
    assert t.called_tools == ["lookup"] and t.response == body and t.request == CHAT_REQ
    assert t.streamed is False and t.ttft_ms is None


def test_openai_stream_split_events_tools_usage_and_ttft():
    chunks = [
        {
            "id": "c2",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
            "usage": None,
        },
        {
            "id": "c2",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "Hel"}}],
        },
        {"id": "c2", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "id": "c2",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ],
        },
        {
            "id": "c2",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        },
        {
            "id": "c2",
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": 9,
                "total_tokens": 59,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        },
    ]
    raw = (
        b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )
    # network pieces that cut events mid-line; the first content ("Hel") completes in piece 1
    first_content = raw.index(b"Hel") + 10
    pieces = [raw[:20], raw[20:first_content], raw[first_content:]]
    req = {**CHAT_REQ, "stream": True, "stream_options": {"include_usage": True}}
    flow = make_flow("api.openai.com", "/v1/chat/completions", req, ctype="text/event-stream")
    _, t, problems = run(flow, pieces, times=[T0 + 0.1, T0 + 0.25, T0 + 0.9])
    assert problems == []
    assert t.streamed and t.model == "gpt-4o-mini"
    assert (t.prompt_tokens, t.completion_tokens, t.cached_tokens) == (50, 9, 0)
    assert t.called_tools == ["get_weather"]
    msg = t.response["choices"][0]["message"]
    assert msg["content"] == "Hello"
    assert msg["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert t.ttft_ms == 250.0


def test_openai_stream_without_usage_is_estimated():
    raw = (
        b"data: "
        + json.dumps(
            {"model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "x"}}]}
        ).encode()
        + b"\n\ndata: [DONE]\n\n"
    )
    flow = make_flow(
        "api.openai.com",
        "/v1/chat/completions",
        {**CHAT_REQ, "stream": True},
        ctype="text/event-stream",
    )
    ex, t, _ = run(flow, [raw])
    assert t.response["choices"][0]["message"]["content"] == "x"
    # counted with the tokenizer: "x" is one token; the prompt is "user\nhi" plus framing
    assert (t.usage_source, t.completion_tokens, t.usage_raw) == ("estimated", 1, None)
    assert t.prompt_tokens == 3 + 3 + 3 and t.total_tokens == 10
    unestimated, _ = build_trace(ex, estimator=None)
    assert unestimated.prompt_tokens is None and unestimated.usage_source == "none"


ANTHROPIC_EVENTS = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "usage": {
                "input_tokens": 21,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 1500,
                "output_tokens": 1,
            },
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "tu1", "name": "search", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '"llm"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 10}},
    {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 25}},
    {"type": "message_stop"},
]


def test_anthropic_stream_gzip_cache_tokens_cumulative_output():
    raw = gzip.compress(sse(*ANTHROPIC_EVENTS, named=True))
    pieces = [raw[i : i + 17] for i in range(0, len(raw), 17)]
    flow = make_flow(
        "api.anthropic.com",
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 100, "messages": []},
        ctype="text/event-stream; charset=utf-8",
        encoding="gzip",
    )
    _, t, problems = run(flow, pieces)
    assert problems == []
    assert (t.provider, t.api, t.model) == ("anthropic", "messages", "claude-sonnet-4-5")
    # input_tokens excludes cache traffic: the prompt is 21 + 100 + 1500
    assert (t.prompt_tokens, t.cached_tokens, t.cache_write_tokens) == (1621, 1500, 100)
    assert t.completion_tokens == 25  # the last cumulative count, not 1 + 10 + 25
    assert t.called_tools == ["search"]
    content = t.response["content"]
    assert content[0]["text"] == "Hi" and content[1]["input"] == {"q": "llm"}
    assert t.response["stop_reason"] == "tool_use"


def test_anthropic_json_tool_use():
    body = {
        "id": "m",
        "type": "message",
        "model": "claude-haiku-4-5",
        "content": [{"type": "tool_use", "id": "x", "name": "calc", "input": {}}],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    flow = make_flow("api.anthropic.com", "/v1/messages", {"model": "claude-haiku-4-5"})
    _, t, _ = run(flow, [json.dumps(body).encode()])
    assert (t.prompt_tokens, t.completion_tokens, t.cached_tokens) == (10, 3, 0)
    assert t.called_tools == ["calc"]


def test_http_error_records_provider_error_and_no_usage():
    body = {"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": None}}
    flow = make_flow("api.openai.com", "/v1/chat/completions", CHAT_REQ, status=429)
    _, t, _ = run(flow, [json.dumps(body).encode()])
    assert (t.outcome, t.status, t.error) == (
        "http_error",
        429,
        "rate_limit_error: Rate limit reached",
    )
    assert t.prompt_tokens is None and t.cost_usd is None


def test_upstream_cut_keeps_partial_usage():
    raw = sse(*ANTHROPIC_EVENTS[:4], named=True)
    flow = make_flow(
        "api.anthropic.com",
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "stream": True},
        ctype="text/event-stream",
    )
    _, t, _ = run(flow, [raw], end=False, error="HTTP/1 protocol error: peer closed connection")
    assert t.outcome == "upstream_error" and "peer closed" in t.error
    assert t.prompt_tokens == 1621 and t.completion_tokens == 1
    assert t.response["content"][0]["text"] == "Hi"


def test_client_abort_outcome():
    flow = make_flow("api.openai.com", "/v1/chat/completions", CHAT_REQ, ctype="text/event-stream")
    _, t, _ = run(flow, [b'data: {"choices": []}\n\n'], end=False, error="Client disconnected.")
    assert t.outcome == "client_abort"


def test_garbage_bodies_are_problems_not_exceptions():
    flow = make_flow("api.openai.com", "/v1/chat/completions", CHAT_REQ)
    flow.request.content = b"\xff\xfe{not json"
    _, t, problems = run(flow, [b"<html>bad gateway</html>"])
    assert t is not None and t.request is None and t.prompt_tokens is None
    assert problems == ["request body is not JSON", "response body is not JSON"]
    flow = make_flow("api.openai.com", "/v1/chat/completions", CHAT_REQ, encoding="gzip")
    _, t, problems = run(flow, [b"not gzip at all"])
    assert t is not None and problems and problems[0].startswith("response body: corrupt gzip")


def test_secrets_never_reach_the_trace_and_session_header_is_taken_off():
    secrets = {
        "authorization": "Bearer sk-SECRET-1",
        "x-api-key": "sk-ant-SECRET-2",
        "api-key": "SECRET-3",
        "x-goog-api-key": "SECRET-4",
        "cookie": "s=SECRET-5",
        "proxy-authorization": "Basic SECRET-6",
        "x-llmprof-session": "run-42",
    }
    flow = make_flow(
        "api.openai.com",
        "/v1/chat/completions?key=SECRET-7&api_key=SECRET-8",
        CHAT_REQ,
        headers=secrets,
    )
    ex, t, _ = run(flow, [b"{}"])
    assert "x-llmprof-session" not in flow.request.headers  # not forwarded upstream
    assert t.session_hint == "run-42" and t.endpoint == "/v1/chat/completions"
    dumped = json.dumps(t.to_dict(), default=str) + repr(ex)
    assert "SECRET" not in dumped
    assert t.request_headers == {"content-type": "application/json"}


def test_non_llm_paths_are_not_traces():
    for method, path in [
        ("GET", "/v1/models"),
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/files"),
    ]:
        req = tutils.treq(
            host="api.openai.com",
            port=443,
            method=method.encode(),
            path=path.encode(),
            content=b"{}",
        )
        ex = capture.snapshot(tflow.tflow(req=req, resp=True), None, None)
        assert build_trace(ex) == (None, [])


def test_a_50_mb_body_is_forwarded_and_never_breaks_the_record():
    """Huge bodies pass through the tee untouched; past the capture limit they are not
    kept (counted as a problem), and garbage of that size never raises."""
    flow = make_flow("api.openai.com", "/v1/chat/completions", CHAT_REQ)
    capture.start(flow)
    tee = capture.Tee(limit=8 << 20)
    chunk = b"\xff" * (1 << 20)  # invalid UTF-8, not JSON
    for _ in range(50):
        assert tee(chunk) is chunk
    tee(b"")
    assert tee.overflow and tee.size == 50 << 20 and len(tee.chunks) == 8
    ex = capture.snapshot(flow, tee, None)
    trace, problems = build_trace(ex)
    assert trace is not None and trace.outcome == "ok" and trace.prompt_tokens is None
    assert "response larger than the capture limit" in problems
    assert "response body is not JSON" in problems
