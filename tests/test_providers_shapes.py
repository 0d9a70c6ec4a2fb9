"""Flow -> Trace for every API shape, on mitmproxy.test flows built from each provider's
documented wire format: tokens, model, tools, reassembled response, errors and TTFT."""

from __future__ import annotations

import json

from tests.support.flows import T0, make_flow, run, split_every, sse

GEMINI = "generativelanguage.googleapis.com"
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:"

# --------------------------------------------------------------------------- Responses

RESP_USAGE = {
    "input_tokens": 3000,
    "input_tokens_details": {"cached_tokens": 2048},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 384},
    "total_tokens": 3500,
}
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "o4-mini-2025-04-16",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Cold.", "annotations": []}],
        },
    ],
    "usage": RESP_USAGE,
    "error": None,
}


def test_responses_json_with_tools_and_server_side_history():
    req = {"model": "o4-mini", "input": "and tomorrow?", "previous_response_id": "resp_0"}
    flow = make_flow("api.openai.com", "/v1/responses", req)
    _, t, problems = run(flow, [json.dumps(RESPONSE).encode()])
    assert problems == []
    assert (t.provider, t.api, t.model, t.requested_model) == (
        "openai",
        "responses",
        "o4-mini-2025-04-16",
        "o4-mini",
    )
    assert (t.prompt_tokens, t.completion_tokens, t.cached_tokens, t.reasoning_tokens) == (
        3000,
        500,
        2048,
        384,
    )
    assert t.total_tokens == 3500 and t.usage_source == "provider" and t.usage_raw == RESP_USAGE
    assert t.called_tools == ["web_search", "get_weather"] and t.response == RESPONSE
    assert t.analysis == {"history": "server-side", "previous_response_id": "resp_0"}
    assert t.streamed is False and t.ttft_ms is None


def _responses_events(final_type="response.completed"):
    created = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    call = RESPONSE["output"][2]
    return [
        {"type": "response.created", "sequence_number": 0, "response": created},
        {"type": "response.in_progress", "sequence_number": 1, "response": created},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**call, "arguments": ""},
        },
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"city":'},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '"Oslo"}'},
        {"type": "response.output_item.done", "output_index": 0, "item": call},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {"type": "message", "content": []},
        },
        {
            "type": "response.output_text.delta",
            "output_index": 1,
            "content_index": 0,
            "delta": "Cold.",
        },
        {"type": final_type, "sequence_number": 9, "response": RESPONSE},
    ]


def test_responses_stream_final_response_and_ttft():
    events = _responses_events()
    pieces = [sse(e, named=True) for e in events]
    flow = make_flow(
        "myres.openai.azure.com",
        "/openai/v1/responses",
        {"model": "o4-mini", "input": "hi", "stream": True},
        ctype="text/event-stream",
    )
    _, t, problems = run(flow, pieces)
    assert problems == [] and t.provider == "azure" and t.streamed
    assert t.response == RESPONSE and t.prompt_tokens == 3000 and t.completion_tokens == 500
    assert t.called_tools == ["web_search", "get_weather"]
    assert t.ttft_ms == 400.0  # the first delta is the 4th network chunk: T0 + 0.4
    assert t.analysis is None


def test_responses_stream_failed_and_cut():
    failed = {**RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "x"}}
    events = _responses_events("response.failed")
    events[-1]["response"] = failed
    flow = make_flow("api.openai.com", "/v1/responses", {"stream": True}, ctype="text/event-stream")
    _, t, _ = run(flow, [b"".join(sse(e, named=True) for e in events)])
    assert t.error == "server_error: x" and t.prompt_tokens == 3000
    # cut before the terminal event: what arrived is kept, and the output is estimated
    flow = make_flow("api.openai.com", "/v1/responses", {"input": "hi"}, ctype="text/event-stream")
    raw = b"".join(sse(e, named=True) for e in events[:-1])
    _, t, _ = run(flow, split_every(raw, 50), end=False, error="peer closed connection")
    assert t.outcome == "upstream_error" and t.usage_source == "estimated"
    assert t.response["output"][0]["arguments"] == '{"city":"Oslo"}'
    assert t.response["output"][1]["content"][0]["text"] == "Cold."
    assert t.called_tools == ["get_weather"] and t.completion_tokens > 0


# --------------------------------------------------------------------------- Gemini

GEMINI_USAGE = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 1024,
    "candidatesTokenCount": 12,
    "thoughtsTokenCount": 300,
    "totalTokenCount": 1512,
}


def _gemini_chunks():
    def chunk(parts, finish=None, usage=None):
        cand = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        out = {"candidates": [cand], "modelVersion": "gemini-2.5-flash-preview-05-20"}
        out["usageMetadata"] = usage or {"promptTokenCount": 1200, "totalTokenCount": 1200}
        return out

    return [
        chunk([{"text": "Let me think", "thought": True}]),
        chunk([{"text": "Hello"}]),
        chunk([{"text": " world"}]),
        chunk([{"functionCall": {"name": "lookup", "args": {"q": "x"}}}], "STOP", GEMINI_USAGE),
    ]


def _check_gemini_stream(t):
    assert (t.provider, t.api, t.requested_model, t.model) == (
        "gemini",
        "gemini",
        "gemini-2.5-flash",
        "gemini-2.5-flash-preview-05-20",
    )
    # prompt includes the cache; thoughts are outside candidates but billed as output
    assert (t.prompt_tokens, t.cached_tokens, t.completion_tokens, t.reasoning_tokens) == (
        1200,
        1024,
        312,
        300,
    )
    assert t.streamed and t.called_tools == ["lookup"]
    parts = t.response["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": "Let me think", "thought": True},
        {"text": "Hello world"},
        {"functionCall": {"name": "lookup", "args": {"q": "x"}}},
    ]
    assert t.response["candidates"][0]["finishReason"] == "STOP"


def test_gemini_sse_stream():
    raw = [sse(c, crlf=True) for c in _gemini_chunks()]
    flow = make_flow(
        GEMINI, GEMINI_PATH + "streamGenerateContent?alt=sse", {}, ctype="text/event-stream"
    )
    _, t, problems = run(flow, raw)
    assert problems == []
    _check_gemini_stream(t)
    assert t.ttft_ms == 100.0  # the thought summary is the first content


def test_gemini_json_array_stream_split_anywhere():
    chunks = _gemini_chunks()
    chunks[0] = {"usageMetadata": {"promptTokenCount": 1200}}  # usage first, text later
    pretty = [json.dumps(c, indent=2) for c in chunks]
    elements = ["[" + pretty[0]] + [",\r\n" + p for p in pretty[1:]]
    elements[-1] += "]"
    for size in (1, 7, 64, 100_000):
        raw = b"".join(e.encode() for e in elements)
        pieces = split_every(raw, size) if size < 100_000 else [e.encode() for e in elements]
        flow = make_flow(GEMINI, GEMINI_PATH + "streamGenerateContent", {})
        ex, t, problems = run(flow, pieces)
        assert problems == [] and t.streamed
        assert t.response["candidates"][0]["content"]["parts"][0] == {"text": "Hello world"}
        assert (t.prompt_tokens, t.completion_tokens) == (1200, 312)
        # TTFT: the network chunk that completed the first element carrying text
        first_text_end = len(elements[0]) + len(elements[1]) - 1
        want = first_text_end // size if size < 100_000 else 1
        assert t.ttft_ms == round((ex.chunk_times[want] - T0) * 1000, 3)


def test_gemini_json_snake_case_and_vertex():
    body = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finish_reason": "STOP"}
        ],
        "usage_metadata": {
            "prompt_token_count": 10,
            "candidates_token_count": 1,
            "tool_use_prompt_token_count": 5,
            "total_token_count": 16,
        },
        "model_version": "gemini-2.0-flash-001",
    }
    path = (
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash"
        ":generateContent"
    )
    flow = make_flow("us-central1-aiplatform.googleapis.com", path, {"contents": []})
    _, t, _ = run(flow, [json.dumps(body).encode()])
    assert (t.provider, t.model, t.requested_model) == (
        "vertex",
        "gemini-2.0-flash-001",
        "gemini-2.0-flash",
    )
    assert (t.prompt_tokens, t.completion_tokens, t.total_tokens) == (15, 1, 16)


def test_gemini_errors_json_and_array():
    err = {"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}
    for path, body in (("generateContent", err), ("streamGenerateContent", [err])):
        flow = make_flow(GEMINI, GEMINI_PATH + path, {}, status=429)
        _, t, problems = run(flow, [json.dumps(body, indent=2).encode()])
        assert problems == []
        assert (t.outcome, t.error, t.prompt_tokens, t.usage_source) == (
            "http_error",
            "RESOURCE_EXHAUSTED: Quota",
            None,
            "none",
        )


def test_gemini_embeddings_are_estimated():
    req = {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello world"}]}}
        ]
    }
    flow = make_flow(GEMINI, "/v1beta/models/text-embedding-004:batchEmbedContents", req)
    _, t, _ = run(flow, [json.dumps({"embeddings": [{"values": [0.1] * 768}]}).encode()])
    assert (t.api, t.requested_model, t.usage_source) == (
        "gemini_embed",
        "text-embedding-004",
        "estimated",
    )
    assert t.prompt_tokens == 3 + 2 and t.completion_tokens is None  # "hello world" + framing
    assert t.response == {"embeddings": [{"values": {"dims": 768}}]}


# --------------------------------------------------------------------------- Azure, compatible


def test_azure_deployment_and_underlying_model():
    body = {
        "object": "chat.completion",
        "model": "gpt-4o-2024-11-20",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }
    flow = make_flow(
        "contoso.openai.azure.com",
        "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
        {"messages": [{"role": "user", "content": "hi"}]},
    )
    _, t, _ = run(flow, [json.dumps(body).encode()])
    assert (t.provider, t.requested_model, t.model, t.endpoint) == (
        "azure",
        "prod-4o",
        "gpt-4o-2024-11-20",
        "/openai/deployments/prod-4o/chat/completions",
    )
    assert (t.prompt_tokens, t.completion_tokens) == (9, 1)


def test_groq_x_groq_usage_and_openrouter_cost():
    chunk = {"model": "llama-3.1-8b-instant", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
    final = {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "x_groq": {"usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}},
    }
    flow = make_flow(
        "api.groq.com", "/openai/v1/chat/completions", {"stream": True}, ctype="text/event-stream"
    )
    _, t, _ = run(flow, [sse(chunk, final) + b"data: [DONE]\n\n"])
    assert (t.provider, t.prompt_tokens, t.completion_tokens, t.usage_source) == (
        "groq",
        40,
        1,
        "provider",
    )
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.0004}
    flow = make_flow("openrouter.ai", "/api/v1/chat/completions", {"model": "openai/gpt-4o"})
    _, t, _ = run(
        flow, [json.dumps({"model": "openai/gpt-4o", "choices": [], "usage": usage}).encode()]
    )
    assert t.provider == "openrouter" and t.usage_raw["cost"] == 0.0004 and t.prompt_tokens == 10


# --------------------------------------------------------------------------- Ollama


def _ndjson(*objs):
    return [json.dumps(o).encode() + b"\n" for o in objs]


def test_ollama_chat_ndjson_stream():
    lines = _ndjson(
        {"model": "llama3.2", "message": {"role": "assistant", "content": "The"}, "done": False},
        {"model": "llama3.2", "message": {"role": "assistant", "content": " sky"}, "done": False},
        {
            "model": "llama3.2",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 26,
            "eval_count": 2,
            "total_duration": 4883583458,
        },
    )
    flow = make_flow(
        "localhost",
        "/api/chat",
        {"model": "llama3.2", "messages": []},
        port=11434,
        ctype="application/x-ndjson",
    )
    raw = b"".join(lines)
    _, t, problems = run(flow, [raw[:30], raw[30:90], raw[90:]])
    assert problems == [] and t.streamed and t.host == "localhost:11434"
    assert (t.provider, t.api, t.model, t.prompt_tokens, t.completion_tokens) == (
        "ollama",
        "ollama_chat",
        "llama3.2",
        26,
        2,
    )
    assert t.response["message"]["content"] == "The sky" and t.response["done"] is True
    assert t.ttft_ms == 200.0  # the first line ends in the second chunk
    assert t.usage_raw == {"prompt_eval_count": 26, "eval_count": 2, "total_duration": 4883583458}


def test_ollama_generate_json_tool_calls_and_errors():
    body = {
        "model": "qwen3",
        "response": "42",
        "done": True,
        "context": [1, 2, 3],
        "prompt_eval_count": 5,
        "eval_count": 1,
    }
    req = {"model": "qwen3", "prompt": "why?", "stream": False}
    flow = make_flow("localhost", "/api/generate", req, port=11434)
    _, t, _ = run(flow, [json.dumps(body).encode()])
    assert not t.streamed and t.response["context"] == {"tokens": 3} and t.completion_tokens == 1
    call = {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    lines = _ndjson(
        {
            "model": "qwen3",
            "message": {"role": "assistant", "content": "", "tool_calls": [call]},
            "done": False,
        },
        {
            "model": "qwen3",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "prompt_eval_count": 9,
            "eval_count": 7,
        },
    )
    flow = make_flow(
        "localhost", "/api/chat", {"model": "qwen3"}, port=11434, ctype="application/x-ndjson"
    )
    _, t, _ = run(flow, lines)
    assert t.called_tools == ["get_weather"] and t.response["message"]["tool_calls"] == [call]
    flow = make_flow("localhost", "/api/chat", {"model": "nope"}, port=11434, status=404)
    _, t, _ = run(flow, [b'{"error":"model \\"nope\\" not found, try pulling it first"}'])
    assert t.outcome == "http_error" and t.error.startswith('error: model "nope" not found')


# --------------------------------------------------------------------------- legacy shapes


def test_completions_stream_and_embeddings():
    chunks = [
        {
            "object": "text_completion",
            "model": "gpt-3.5-turbo-instruct",
            "choices": [{"text": "Hi", "index": 0}],
        },
        {
            "object": "text_completion",
            "choices": [{"text": "!", "index": 0, "finish_reason": "stop"}],
        },
        {
            "object": "text_completion",
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
        },
    ]
    flow = make_flow(
        "api.openai.com", "/v1/completions", {"stream": True}, ctype="text/event-stream"
    )
    _, t, _ = run(flow, [sse(*chunks) + b"data: [DONE]\n\n"])
    assert (t.api, t.model, t.prompt_tokens, t.completion_tokens) == (
        "completions",
        "gpt-3.5-turbo-instruct",
        4,
        2,
    )
    assert t.response["choices"][0]["text"] == "Hi!"
    body = {
        "object": "list",
        "data": [{"index": 0, "embedding": "AAAA"}],
        "model": "text-embedding-3-large",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    flow = make_flow(
        "api.openai.com", "/v1/embeddings", {"model": "text-embedding-3-large", "input": "x"}
    )
    _, t, _ = run(flow, [json.dumps(body).encode()])
    assert (t.prompt_tokens, t.completion_tokens, t.total_tokens) == (7, None, 7)
    assert t.response["data"][0]["embedding"] == {"base64_chars": 4}
