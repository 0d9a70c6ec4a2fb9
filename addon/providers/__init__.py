"""Provider parsers, one pure module per API shape, and how a request picks one.

The shape is decided from the path, so an OpenAI-compatible server on a host we
have never heard of is still parsed; the provider's name comes from the host
(and, for Ollama's native API and Vertex AI, from the path). Only POSTs are calls:
`GET /v1/models`, `count_tokens`, `countTokens`, `/v1/responses/input_tokens` and
file uploads pass through unrecorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType

from . import (
    anthropic_messages,
    embeddings,
    gemini,
    gemini_embed,
    ollama,
    openai_chat,
    openai_completions,
    openai_responses,
)

# Known hosts -> provider name (the names the pricing library knows, or maps).
PROVIDER_BY_HOST = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gemini",
    "aiplatform.googleapis.com": "vertex",
    "openrouter.ai": "openrouter",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral",
    "codestral.mistral.ai": "mistral",
    "api.deepseek.com": "deepseek",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.fireworks.ai": "fireworks",
    "api.x.ai": "xai",
}
PROVIDER_BY_SUFFIX = (
    (".openai.azure.com", "azure"),
    (".services.ai.azure.com", "azure"),
    (".cognitiveservices.azure.com", "azure"),
    ("-aiplatform.googleapis.com", "vertex"),
)

# `.../models/{model}:{method}` (Gemini, Vertex publishers/google and publishers/anthropic,
# tuned models, Vertex endpoints). The model may be `gemini-2.5-flash` or `claude-x@2025...`.
_MODEL_METHOD = re.compile(r"/(models|tunedModels|endpoints)/([^/:]+):([A-Za-z]+)$")
_AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/([^/]+)/")
_GEMINI_METHODS = {
    "generateContent": (gemini, False),
    "streamGenerateContent": (gemini, True),
    "embedContent": (gemini_embed, False),
    "batchEmbedContents": (gemini_embed, False),
}
_ANTHROPIC_METHODS = {"rawPredict": False, "streamRawPredict": True}  # Claude on Vertex AI
_OLLAMA = {
    "/api/chat": "ollama_chat",
    "/api/generate": "ollama_generate",
    "/api/embed": "ollama_embed",
    "/api/embeddings": "ollama_embed",  # the older single-prompt form
}


@dataclass(frozen=True, slots=True)
class Shape:
    provider: str
    # chat | responses | messages | gemini | gemini_embed | embeddings | completions
    # | ollama_chat | ollama_generate | ollama_embed
    api: str
    module: ModuleType
    path_model: str | None = None  # the model (Gemini, Vertex) or Azure deployment in the path
    stream: bool = False  # the path itself asks for a stream (streamGenerateContent)


def provider_name(host: str) -> str:
    """The provider for a host; an unknown host is named after itself."""
    host = host.lower().rstrip(".")
    if host in PROVIDER_BY_HOST:
        return PROVIDER_BY_HOST[host]
    for suffix, name in PROVIDER_BY_SUFFIX:
        if host.endswith(suffix) and len(host) > len(suffix):
            return name
    return host


def detect(method: str, host: str, path: str) -> Shape | None:
    """The API shape of a request, or None when it is not a recorded LLM call.

    `path` excludes the query string (which may hold `?key=`).
    """
    if method.upper() != "POST":
        return None
    p = path.rstrip("/")
    provider = provider_name(host)
    if p in _OLLAMA:  # Ollama's native API (before the suffix rules: `/api/embeddings`)
        name = provider if provider in PROVIDER_BY_HOST.values() else "ollama"
        return Shape(name, _OLLAMA[p], ollama)
    deployment = m.group(1) if (m := _AZURE_DEPLOYMENT.match(p)) else None
    if p.endswith("/chat/completions"):
        return Shape(provider, openai_chat.API, openai_chat, deployment)
    if p.endswith("/responses"):
        return Shape(provider, openai_responses.API, openai_responses, deployment)
    if p.endswith("/v1/messages") or p == "/messages":
        return Shape(provider, anthropic_messages.API, anthropic_messages)
    if p.endswith("/embeddings"):
        return Shape(provider, embeddings.API, embeddings, deployment)
    if p.endswith("/completions"):  # legacy completions, Mistral and DeepSeek FIM
        return Shape(provider, openai_completions.API, openai_completions, deployment)
    if m := _MODEL_METHOD.search(p):
        model, verb = m.group(2), m.group(3)
        if verb in _GEMINI_METHODS and ("/publishers/" not in p or "/publishers/google/" in p):
            module, stream = _GEMINI_METHODS[verb]
            return Shape(provider, module.API, module, model, stream)
        if "/publishers/anthropic/" in p and verb in _ANTHROPIC_METHODS:
            return Shape(
                provider,
                anthropic_messages.API,
                anthropic_messages,
                model,
                _ANTHROPIC_METHODS[verb],
            )
    return None
