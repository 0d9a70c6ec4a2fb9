"""Provider parsers, one pure module per API shape, and how a request picks one.

The shape is decided from the path (so an OpenAI-compatible server on a host we
have never heard of is still parsed); the provider's name comes from the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from . import anthropic_messages, openai_chat

# Known hosts -> provider name. Any other LLM host is named after itself.
PROVIDER_BY_HOST = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
}


@dataclass(frozen=True, slots=True)
class Shape:
    provider: str
    api: str
    module: ModuleType


def provider_name(host: str) -> str:
    host = host.lower().rstrip(".")
    return PROVIDER_BY_HOST.get(host, host)


def detect(method: str, host: str, path: str) -> Shape | None:
    """The API shape of a request, or None when it is not a recorded LLM call.

    `path` excludes the query string. Only POSTs are calls; `/v1/models`,
    `/v1/messages/count_tokens` and the like pass through unrecorded.
    """
    if method.upper() != "POST":
        return None
    p = path.rstrip("/")
    if p.endswith("/chat/completions"):
        return Shape(provider_name(host), openai_chat.API, openai_chat)
    if p.endswith("/v1/messages") or p == "/messages":
        return Shape(provider_name(host), anthropic_messages.API, anthropic_messages)
    return None
