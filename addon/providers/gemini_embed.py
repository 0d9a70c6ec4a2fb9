"""Gemini `models/{model}:embedContent` and `:batchEmbedContents`.

The Developer API reports no token counts for embeddings, so these calls are
recorded with the input estimated by the tokenizer (`usage_source: "estimated"`),
unless a `usageMetadata` is present. Vectors are stored as `{"dims": n}`.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import Result, as_dict, as_list, pick
from .embeddings import omit_vector
from .gemini import error_from, usage_from

API = "gemini_embed"
__all__ = ["API", "error_from", "parse_body", "usage_from", "StreamParser"]


def _omit(embedding: Any) -> Any:
    e = as_dict(embedding)
    return {**e, "values": omit_vector(e.get("values"))} if "values" in e else embedding


def parse_body(body: Any) -> Result:
    b = as_dict(body)
    res = Result(response=body, finished=isinstance(body, dict))
    res.usage = usage_from(pick(b, "usageMetadata", "usage_metadata"))
    res.error = error_from(body)
    if b:
        out = dict(b)
        if "embedding" in b:
            out["embedding"] = _omit(b["embedding"])
        if isinstance(b.get("embeddings"), list):
            out["embeddings"] = [_omit(e) for e in as_list(b["embeddings"])]
        res.response = out
    return res


class StreamParser:
    def __init__(self) -> None:
        self.res = Result()

    def on_event(self, event: Event, chunk_index: int) -> None:
        return None

    def finish(self) -> Result:
        return self.res
