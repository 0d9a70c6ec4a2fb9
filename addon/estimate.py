"""Token estimates for calls whose provider reported no usage.

An OpenAI chat stream without `stream_options.include_usage`, a Gemini embedding,
a self-hosted server that omits `usage`: these were still billed (or still used
the GPU), so llmprof counts the text itself and marks the trace
`usage_source = "estimated"`. The prompt is the request's text (messages, system,
tools, input, prompt, contents; media and base64 blobs left out) plus a few tokens
of framing per message; the completion is the text and tool arguments the model
produced (`Result.output_text`).

The counter is a seam: `Estimator(provider, model, text) -> tokens`. The default
uses llmprof's offline tiktoken (`addon.analysis.tokens`: o200k for current OpenAI
models, cl100k elsewhere); when that cannot be loaded, nothing is estimated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Estimator = Callable[[str | None, str | None, str], int]

# Request fields that hold the prompt, in every shape llmprof parses.
PROMPT_KEYS = (
    "system",
    "systemInstruction",
    "system_instruction",
    "instructions",
    "messages",
    "contents",
    "input",
    "prompt",
    "suffix",
    "content",
    "requests",
)
TOOL_KEYS = ("tools", "functions")
# Inside the prompt: fields that are ids, settings or media, not text the model reads.
SKIP_KEYS = frozenset(
    {
        "type", "id", "call_id", "tool_call_id", "tool_use_id", "cache_control", "model",
        "mimeType", "mime_type", "media_type", "detail", "url", "image_url", "data",
        "inlineData", "inline_data", "fileData", "file_data", "file_id", "input_audio",
        "images", "image", "source", "signature", "encrypted_content", "status", "taskType",
        "task_type", "outputDimensionality", "output_dimensionality",
    }
)  # fmt: skip
PER_MESSAGE = 3  # role and separators of one message, as OpenAI's chat format renders it
PER_REQUEST = 3
_BLOB = re.compile(r"^(data:|[A-Za-z0-9+/=_-]{512,}$)")
_OUTPUT_APIS_WITHOUT_TEXT = ("embeddings", "gemini_embed", "ollama_embed")


def default_estimator() -> Estimator | None:
    """tiktoken via `addon.analysis.tokens`, or None if it is not available."""
    try:
        from .analysis import tokens
    except Exception:  # noqa: BLE001 - no tokenizer: no estimate, never a crash
        return None

    def estimate(provider: str | None, model: str | None, text: str) -> int:
        return tokens.cached_count(text, tokens.encoding_for(provider, model))

    return estimate


def _walk(value: Any, texts: list[str], numbers: list[int]) -> int:
    """Collect the prompt's strings; return how many messages (dicts with a role) it holds."""
    messages = 0
    if isinstance(value, str):
        if value and not _BLOB.match(value):
            texts.append(value)
    elif isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            numbers.append(len(value))  # pre-tokenized input (embeddings, completions)
        else:
            for v in value:
                messages += _walk(v, texts, numbers)
    elif isinstance(value, dict):
        messages += "role" in value
        for key, v in value.items():
            if key == "role" and isinstance(v, str):
                texts.append(v)
            elif key not in SKIP_KEYS:
                messages += _walk(v, texts, numbers)
    return messages


def prompt_text(request: Any) -> tuple[str, int]:
    """(the text of the prompt, tokens to add for framing and pre-tokenized input)."""
    if not isinstance(request, dict):
        return "", 0
    texts: list[str] = []
    numbers: list[int] = []
    messages = 0
    for key in PROMPT_KEYS:
        if key in request:
            messages += _walk(request[key], texts, numbers)
    for key in TOOL_KEYS:
        if request.get(key):
            texts.append(json.dumps(request[key], separators=(",", ":"), ensure_ascii=False))
    return "\n".join(texts), PER_REQUEST + PER_MESSAGE * messages + sum(numbers)


def estimate(
    estimator: Estimator,
    provider: str | None,
    model: str | None,
    api: str,
    request: Any,
    output_text: str,
) -> tuple[int, int | None]:
    """(prompt tokens, completion tokens or None for shapes without output)."""
    text, extra = prompt_text(request)
    prompt = estimator(provider, model, text) + extra
    if api in _OUTPUT_APIS_WITHOUT_TEXT:
        return prompt, None
    return prompt, estimator(provider, model, output_text)
