"""OpenAI-style embeddings (`POST /v1/embeddings`, Azure deployments, Mistral,
Together, vLLM, ...): `usage = {prompt_tokens, total_tokens}`, no output tokens.

The vectors themselves are not worth a database row: each one is stored as
`{"dims": n}` (or `{"base64_chars": n}` for `encoding_format: "base64"`).
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import Result, Usage, as_dict, as_int, as_list, as_str
from .openai_chat import error_from

API = "embeddings"
__all__ = ["API", "error_from", "omit_vector", "parse_body", "usage_from", "StreamParser"]


def omit_vector(vector: Any) -> Any:
    """A stand-in for an embedding vector: its size, not its numbers."""
    if isinstance(vector, list):
        return {"dims": len(vector)}
    if isinstance(vector, str):
        return {"base64_chars": len(vector)}
    return vector


def usage_from(raw: Any) -> Usage | None:
    u = as_dict(raw)
    if not u:
        return None
    prompt = as_int(u.get("prompt_tokens"))
    if prompt is None:
        prompt = as_int(u.get("total_tokens"))
    return Usage(prompt_tokens=prompt, completion_tokens=None, raw=raw)


def parse_body(body: Any) -> Result:
    b = as_dict(body)
    res = Result(response=body, finished=isinstance(body, dict))
    res.model = as_str(b.get("model"))
    res.usage = usage_from(b.get("usage"))
    res.error = error_from(body)
    if isinstance(b.get("data"), list):
        data = [
            {**item, "embedding": omit_vector(item.get("embedding"))}
            if isinstance(item, dict)
            else item
            for item in as_list(b.get("data"))
        ]
        res.response = {**b, "data": data}
    return res


class StreamParser:
    """Embeddings are never streamed; an SSE answer is read for errors only."""

    def __init__(self) -> None:
        self.res = Result()

    def on_event(self, event: Event, chunk_index: int) -> None:
        return None

    def finish(self) -> Result:
        return self.res
