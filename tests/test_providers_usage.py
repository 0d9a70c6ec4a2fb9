"""Each provider's usage object -> llmprof's one convention (prompt = all input, cache
included; completion = all output, reasoning included), from documented wire examples,
and fuzzed: no input makes an extractor raise or report a negative count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.providers import (
    anthropic_messages,
    embeddings,
    gemini,
    gemini_embed,
    ollama,
    openai_chat,
    openai_completions,
    openai_responses,
)
from addon.sse import Event

MODULES = [
    anthropic_messages,
    embeddings,
    gemini,
    gemini_embed,
    ollama,
    openai_chat,
    openai_completions,
    openai_responses,
]


def counts(u):
    return (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens)


USAGE_CASES = {
    "openai chat": (
        openai_chat,
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 192},
        },
        (2006, 300, 1920, 192),
    ),
    "deepseek cache hits": (
        openai_chat,
        {
            "prompt_tokens": 1000,
            "completion_tokens": 50,
            "total_tokens": 1050,
            "prompt_cache_hit_tokens": 800,
            "prompt_cache_miss_tokens": 200,
        },
        (1000, 50, 800, None),
    ),
    "openrouter cost": (
        openai_chat,
        {
            "prompt_tokens": 194,
            "completion_tokens": 2,
            "total_tokens": 196,
            "cost": 0.95,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100},
        },
        (194, 2, 0, None),
    ),
    # xAI: reasoning outside completion_tokens, inside total_tokens (32 + 9 + 94 = 135)
    "xai additive reasoning": (
        openai_chat,
        {
            "prompt_tokens": 32,
            "completion_tokens": 9,
            "total_tokens": 135,
            "completion_tokens_details": {"reasoning_tokens": 94},
        },
        (32, 103, None, 94),
    ),
    "responses": (
        openai_responses,
        {
            "input_tokens": 5000,
            "input_tokens_details": {"cached_tokens": 4096},
            "output_tokens": 900,
            "output_tokens_details": {"reasoning_tokens": 640},
            "total_tokens": 5900,
        },
        (5000, 900, 4096, 640),
    ),
    "gemini camelCase": (
        gemini,
        {
            "promptTokenCount": 1200,
            "cachedContentTokenCount": 1024,
            "candidatesTokenCount": 80,
            "thoughtsTokenCount": 300,
            "toolUsePromptTokenCount": 40,
            "totalTokenCount": 1620,
        },
        (1240, 380, 1024, 300),
    ),
    "gemini snake_case": (
        gemini,
        {
            "prompt_token_count": 10,
            "candidates_token_count": 5,
            "thoughts_token_count": 7,
            "total_token_count": 22,
        },
        (10, 12, None, 7),
    ),
    # proto3 leaves zero counts out: no candidates and no thoughts, only the total
    "gemini zeros omitted": (
        gemini,
        {"promptTokenCount": 10, "totalTokenCount": 10},
        (10, 0, None, None),
    ),
    "ollama": (
        ollama,
        {"prompt_eval_count": 26, "eval_count": 298, "eval_duration": 4_799_921_000},
        (26, 298, None, None),
    ),
    "embeddings": (embeddings, {"prompt_tokens": 8, "total_tokens": 8}, (8, None, None, None)),
}


@pytest.mark.parametrize("case", USAGE_CASES)
def test_usage_conventions(case):
    module, raw, want = USAGE_CASES[case]
    u = module.usage_from(raw)
    assert counts(u) == want


ERRORS = [
    (
        openai_chat,
        {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
        "rate_limit_exceeded: Rate limit",
    ),
    (
        openai_chat,  # Azure
        {"error": {"code": "content_filter", "message": "filtered", "status": 400}},
        "content_filter: filtered",
    ),
    (
        openai_responses,
        {"type": "error", "code": "server_error", "message": "boom", "sequence_number": 3},
        "server_error: boom",
    ),
    (
        openai_responses,
        {
            "object": "response",
            "status": "failed",
            "error": {"code": "rate_limit_exceeded", "message": "slow"},
        },
        "rate_limit_exceeded: slow",
    ),
    (
        gemini,
        {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
        "RESOURCE_EXHAUSTED: Resource exhausted",
    ),
    (gemini, {"promptFeedback": {"blockReason": "SAFETY"}}, "prompt_blocked: SAFETY"),
    (
        ollama,
        {"error": 'model "llama9" not found, try pulling it first'},
        'error: model "llama9" not found, try pulling it first',
    ),
    (
        anthropic_messages,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        "overloaded_error: Overloaded",
    ),
]


@pytest.mark.parametrize(("module", "body", "want"), ERRORS)
def test_provider_error_shapes(module, body, want):
    assert module.error_from(body) == want
    assert module.parse_body(body).usage is None


def test_embedding_vectors_are_not_stored():
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1] * 1536}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    res = embeddings.parse_body(body)
    assert res.response["data"][0]["embedding"] == {"dims": 1536}
    assert res.model == "text-embedding-3-small" and res.usage.prompt_tokens == 5
    res = gemini_embed.parse_body(
        {"embeddings": [{"values": [0.5] * 768}, {"values": [0.1] * 768}]}
    )
    assert res.response == {"embeddings": [{"values": {"dims": 768}}, {"values": {"dims": 768}}]}
    assert res.usage is None
    res = ollama.parse_body(
        {"model": "all-minilm", "embeddings": [[0.1, 0.2]], "prompt_eval_count": 4}
    )
    assert res.response["embeddings"] == [{"dims": 2}] and res.usage.prompt_tokens == 4


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
USAGE_KEYS = [
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "cached_tokens",
    "reasoning_tokens",
    "prompt_cache_hit_tokens",
    "input_tokens",
    "output_tokens",
    "input_tokens_details",
    "output_tokens_details",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
    "prompt_eval_count",
    "eval_count",
]
count_like = st.one_of(
    st.integers(min_value=-5, max_value=10**9),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.dictionaries(st.sampled_from(USAGE_KEYS), st.integers(-3, 10**6), max_size=4),
)
usage_like = st.dictionaries(st.sampled_from(USAGE_KEYS), count_like, max_size=10)


def _non_negative(u):
    if u is None:
        return
    for value in counts(u) + (u.cache_write_tokens,):
        assert value is None or (isinstance(value, int) and value >= 0)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(usage_like, json_values))
def test_usage_extractors_never_raise_nor_go_negative(raw):
    for module in MODULES:
        _non_negative(module.usage_from(raw))


@settings(max_examples=200, deadline=None)
@given(
    body=st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(
                USAGE_KEYS
                + [
                    "usage",
                    "usageMetadata",
                    "choices",
                    "candidates",
                    "output",
                    "message",
                    "error",
                    "data",
                ]
            ),
            json_values,
            max_size=6,
        ),
    )
)
def test_parse_body_and_streams_never_raise(body):
    import json

    for module in MODULES:
        res = module.parse_body(body)
        _non_negative(res.usage)
        parser = module.StreamParser()
        try:
            data = json.dumps(body)
        except ValueError:
            data = "{"
        for i, text in enumerate([data, "[DONE]", "not json", "{}", data]):
            parser.on_event(Event("message", text), i)
        _non_negative(parser.finish().usage)
