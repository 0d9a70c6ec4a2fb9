"""Which hosts are intercepted, which requests are calls, and what each one is called."""

from __future__ import annotations

import json

import pytest

from addon import providers
from addon.hosts import HostMatcher
from tests.support.flows import make_flow, run

DEFAULTS = [
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "myres.openai.azure.com",
    "proj.services.ai.azure.com",
    "eastus.api.cognitiveservices.azure.com",
    "openrouter.ai",
    "api.groq.com",
    "api.mistral.ai",
    "api.deepseek.com",
    "api.together.xyz",
    "api.fireworks.ai",
    "api.x.ai",
    "aiplatform.googleapis.com",
    "us-central1-aiplatform.googleapis.com",
]
NOT_LLM_HOSTS = [
    "notopenai.com.evil",
    "api.openai.com.evil",
    "evilapi.openai.com",
    "openai.azure.com",  # the bare suffix is not a resource
    "openai.azure.com.evil",
    "myres.openai.azure.com.evil",
    "groq.com",
    "openrouter.ai.example",
    "storage.googleapis.com",
    "googleapis.com",
    "-aiplatform.googleapis.com",
    "aiplatform.googleapis.com.evil",
    "localhost",
]


@pytest.mark.parametrize("host", DEFAULTS)
def test_default_hosts_are_intercepted(host):
    assert HostMatcher()(host, 443) and HostMatcher()(host.upper() + ".", 443)


@pytest.mark.parametrize("host", NOT_LLM_HOSTS)
def test_lookalike_hosts_are_not(host):
    assert not HostMatcher()(host, 443)


def test_extra_hosts_and_ports():
    m = HostMatcher(["localhost:11434", "vllm.lan:8000", "*.corp.example"])
    assert m("localhost", 11434) and not m("localhost", 8080)
    assert m("gw.corp.example") and not m("corp.example")
    for bad in ("*:80", "a*b.com", "*.x/y", "host:", ":80"):
        with pytest.raises(ValueError):
            HostMatcher([bad])


PROVIDERS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gemini",
    "aiplatform.googleapis.com": "vertex",
    "europe-west4-aiplatform.googleapis.com": "vertex",
    "myres.openai.azure.com": "azure",
    "proj.services.ai.azure.com": "azure",
    "x.cognitiveservices.azure.com": "azure",
    "openrouter.ai": "openrouter",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral",
    "api.deepseek.com": "deepseek",
    "api.together.xyz": "together",
    "api.fireworks.ai": "fireworks",
    "API.X.AI.": "xai",
    "vllm.lan": "vllm.lan",  # an unknown host is named after itself
}


@pytest.mark.parametrize(("host", "name"), PROVIDERS.items())
def test_provider_names(host, name):
    assert providers.provider_name(host) == name


SHAPES = [
    ("api.openai.com", "/v1/chat/completions", "openai", "chat", None, False),
    ("api.openai.com", "/v1/responses", "openai", "responses", None, False),
    ("api.openai.com", "/v1/embeddings", "openai", "embeddings", None, False),
    ("api.openai.com", "/v1/completions", "openai", "completions", None, False),
    ("api.anthropic.com", "/v1/messages", "anthropic", "messages", None, False),
    (
        "r.openai.azure.com",
        "/openai/deployments/prod-4o/chat/completions",
        "azure",
        "chat",
        "prod-4o",
        False,
    ),
    (
        "r.openai.azure.com",
        "/openai/deployments/emb/embeddings",
        "azure",
        "embeddings",
        "emb",
        False,
    ),
    ("r.openai.azure.com", "/openai/v1/chat/completions", "azure", "chat", None, False),
    ("r.openai.azure.com", "/openai/responses", "azure", "responses", None, False),
    ("r.openai.azure.com", "/openai/v1/responses", "azure", "responses", None, False),
    ("p.services.ai.azure.com", "/anthropic/v1/messages", "azure", "messages", None, False),
    ("openrouter.ai", "/api/v1/chat/completions", "openrouter", "chat", None, False),
    ("api.groq.com", "/openai/v1/chat/completions", "groq", "chat", None, False),
    ("api.deepseek.com", "/chat/completions", "deepseek", "chat", None, False),
    ("api.mistral.ai", "/v1/fim/completions", "mistral", "completions", None, False),
    (
        "generativelanguage.googleapis.com",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "gemini",
        "gemini",
        "gemini-2.5-flash",
        False,
    ),
    (
        "generativelanguage.googleapis.com",
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        "gemini",
        "gemini",
        "gemini-2.5-pro",
        True,
    ),
    (
        "generativelanguage.googleapis.com",
        "/v1beta/tunedModels/my-tune:generateContent",
        "gemini",
        "gemini",
        "my-tune",
        False,
    ),
    (
        "generativelanguage.googleapis.com",
        "/v1beta/models/text-embedding-004:embedContent",
        "gemini",
        "gemini_embed",
        "text-embedding-004",
        False,
    ),
    (
        "generativelanguage.googleapis.com",
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        "gemini",
        "gemini_embed",
        "gemini-embedding-001",
        False,
    ),
    (
        "generativelanguage.googleapis.com",
        "/v1beta/openai/chat/completions",
        "gemini",
        "chat",
        None,
        False,
    ),
    (
        "us-central1-aiplatform.googleapis.com",
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent",
        "vertex",
        "gemini",
        "gemini-2.0-flash",
        True,
    ),
    (
        "us-east5-aiplatform.googleapis.com",
        "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
        "vertex",
        "messages",
        "claude-sonnet-4-5@20250929",
        True,
    ),
    ("localhost", "/api/chat", "ollama", "ollama_chat", None, False),
    ("localhost", "/api/generate", "ollama", "ollama_generate", None, False),
    ("localhost", "/api/embed", "ollama", "ollama_embed", None, False),
    ("localhost", "/v1/chat/completions", "localhost", "chat", None, False),  # Ollama's OpenAI API
    ("vllm.lan", "/v1/completions", "vllm.lan", "completions", None, False),
]


@pytest.mark.parametrize(("host", "path", "provider", "api", "path_model", "stream"), SHAPES)
def test_shape_from_host_and_path(host, path, provider, api, path_model, stream):
    shape = providers.detect("POST", host, path)
    assert shape is not None
    assert (shape.provider, shape.api, shape.path_model, shape.stream) == (
        provider,
        api,
        path_model,
        stream,
    )


NOT_CALLS = [
    ("GET", "api.openai.com", "/v1/models"),
    ("GET", "api.openai.com", "/v1/responses/resp_123"),
    ("POST", "api.openai.com", "/v1/responses/resp_123/cancel"),
    ("POST", "api.openai.com", "/v1/responses/input_tokens"),
    ("POST", "api.openai.com", "/v1/files"),
    ("POST", "api.openai.com", "/v1/uploads"),
    ("POST", "api.openai.com", "/v1/batches"),
    ("POST", "api.openai.com", "/v1/audio/transcriptions"),
    ("POST", "api.anthropic.com", "/v1/messages/count_tokens"),
    ("POST", "api.anthropic.com", "/v1/messages/batches"),
    ("GET", "generativelanguage.googleapis.com", "/v1beta/models"),
    ("POST", "generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-flash:countTokens"),
    ("POST", "generativelanguage.googleapis.com", "/upload/v1beta/files"),
    ("POST", "generativelanguage.googleapis.com", "/v1beta/cachedContents"),
    (
        "POST",
        "us-central1-aiplatform.googleapis.com",
        "/v1/projects/p/locations/l/publishers/meta/models/llama:predict",
    ),
    ("POST", "r.openai.azure.com", "/openai/files"),
    ("GET", "localhost", "/api/tags"),
    ("POST", "localhost", "/api/pull"),
    ("POST", "localhost", "/api/show"),
]


@pytest.mark.parametrize(("method", "host", "path"), NOT_CALLS)
def test_other_paths_pass_through_unrecorded(method, host, path):
    assert providers.detect(method, host, path) is None


def test_gemini_key_in_the_query_is_never_stored():
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    flow = make_flow(
        "generativelanguage.googleapis.com",
        "/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSECRETkey123&alt=json",
        body,
    )
    answer = {"candidates": [], "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}
    ex, t, _ = run(flow, [json.dumps(answer).encode()])
    assert t.endpoint == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert "SECRET" not in json.dumps(t.to_dict(), default=str) + repr(ex)
