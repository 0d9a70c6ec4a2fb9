"""Ollama's native API: `POST /api/chat`, `/api/generate`, `/api/embed` (and the
older `/api/embeddings`). Its OpenAI-compatible `/v1/...` endpoints use the
OpenAI parsers.

Counts: `prompt_eval_count` is the whole prompt (Ollama reports no cache split; it
may omit the count when the prompt was served from its cache) and `eval_count` the
whole output, thinking included. They arrive on the final object (`done: true`).
Chat and generate STREAM BY DEFAULT (`"stream": false` turns it off): the answer is
NDJSON, one object per line. The generate `context` (token ids) and embedding
vectors are stored as their sizes.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import Result, Usage, add_tool, as_dict, as_int, as_list, as_str, load_json
from .embeddings import omit_vector

API = "ollama_chat"  # the shape's name comes from the path: ollama_chat|_generate|_embed
COUNT_KEYS = (
    "prompt_eval_count",
    "eval_count",
    "total_duration",
    "load_duration",
    "prompt_eval_duration",
    "eval_duration",
)


def framing(request: Any, shape: Any) -> str:
    """How a successful answer is framed: NDJSON unless the client turned streaming off."""
    if shape.api == "ollama_embed" or as_dict(request).get("stream") is False:
        return "json"
    return "ndjson"


def usage_from(raw: Any) -> Usage | None:
    u = as_dict(raw)
    if as_int(u.get("prompt_eval_count")) is None and as_int(u.get("eval_count")) is None:
        return None
    return Usage(
        prompt_tokens=as_int(u.get("prompt_eval_count")),
        completion_tokens=as_int(u.get("eval_count")),
        raw={k: u[k] for k in COUNT_KEYS if k in u},
    )


def error_from(body: Any) -> str | None:
    err = as_dict(body).get("error")
    if isinstance(err, str):
        return f"error: {err}"
    if isinstance(err, dict):
        return f"error: {as_str(err.get('message')) or ''}".strip()
    return None


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    if isinstance(out.get("context"), list):
        out["context"] = {"tokens": len(out["context"])}
    if isinstance(out.get("embeddings"), list):
        out["embeddings"] = [omit_vector(v) for v in out["embeddings"]]
    if isinstance(out.get("embedding"), list):
        out["embedding"] = omit_vector(out["embedding"])
    return out


def _pieces(obj: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """(content, thinking, tool calls) of one object, chat or generate."""
    message = as_dict(obj.get("message"))
    content = as_str(message.get("content")) or as_str(obj.get("response")) or ""
    thinking = as_str(message.get("thinking")) or as_str(obj.get("thinking")) or ""
    return content, thinking, as_list(message.get("tool_calls"))


def _call_text(call: Any) -> tuple[str | None, str]:
    fn = as_dict(as_dict(call).get("function"))
    args = fn.get("arguments")
    return as_str(fn.get("name")), args if isinstance(args, str) else str(args or "")


def parse_body(body: Any) -> Result:
    b = as_dict(body)
    res = Result(response=_slim(b) if b else body, finished=isinstance(body, dict))
    res.model = as_str(b.get("model"))
    res.usage = usage_from(b)
    res.error = error_from(body)
    content, thinking, calls = _pieces(b)
    res.output_text = thinking + content
    for call in calls:
        name, args = _call_text(call)
        add_tool(res.called_tools, name)
        res.output_text += args
    return res


class StreamParser:
    """Joins NDJSON chunks into the final object, with the whole text in it.

    Text is kept as lists of pieces and joined once at `finish`: adding to a
    string held by an object copies it every time.
    """

    def __init__(self) -> None:
        self.res = Result()
        self._last: dict[str, Any] = {}
        self._content: list[str] = []
        self._thinking: list[str] = []
        self._calls: list[Any] = []
        self._text: list[str] = []
        self._chat = False

    def on_event(self, event: Event, chunk_index: int) -> None:
        data = as_dict(load_json(event.data))
        if not data:
            return
        self.res.error = error_from(data) or self.res.error
        self.res.model = as_str(data.get("model")) or self.res.model
        self._chat = self._chat or "message" in data
        content, thinking, calls = _pieces(data)
        self._content.append(content)
        self._thinking.append(thinking)
        self._calls += calls
        self._text += (thinking, content)
        self._text += [_call_text(c)[1] for c in calls]
        if (thinking or content or calls) and self.res.first_content_chunk is None:
            self.res.first_content_chunk = chunk_index
        self._last = data
        if data.get("done") is True:
            self.res.finished = True
            self.res.usage = usage_from(data)

    def finish(self) -> Result:
        content, thinking = "".join(self._content), "".join(self._thinking)
        if self._last:
            final = _slim(self._last)
            if self._chat:
                message = {**as_dict(final.get("message")), "content": content}
                message.setdefault("role", "assistant")
                if thinking:
                    message["thinking"] = thinking
                if self._calls:
                    message["tool_calls"] = self._calls
                final["message"] = message
            else:
                final["response"] = content
                if thinking:
                    final["thinking"] = thinking
            self.res.response = final
        for call in self._calls:
            add_tool(self.res.called_tools, _call_text(call)[0])
        self.res.output_text = "".join(self._text)
        return self.res
