"""Anthropic Messages (`POST /v1/messages`).

Wire convention: `input_tokens` EXCLUDES cache reads and cache writes, so the
whole prompt is `input_tokens + cache_creation_input_tokens +
cache_read_input_tokens`. In streams, `message_start` carries the input and cache
counts, and each `message_delta.usage` is cumulative: the last value wins, deltas
are never added up.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import Result, Usage, add_tool, as_dict, as_int, as_list, as_str, load_json, sum_known

API = "messages"
TOOL_BLOCKS = ("tool_use", "server_tool_use", "mcp_tool_use")


def usage_from(raw: Any) -> Usage | None:
    u = as_dict(raw)
    if not u:
        return None
    uncached = as_int(u.get("input_tokens"))
    write = as_int(u.get("cache_creation_input_tokens"))
    read = as_int(u.get("cache_read_input_tokens"))
    details = as_dict(u.get("output_tokens_details"))
    return Usage(
        prompt_tokens=sum_known(uncached, write, read),
        completion_tokens=as_int(u.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=as_int(details.get("thinking_tokens")),
        raw=raw,
    )


def error_from(body: Any) -> str | None:
    b = as_dict(body)
    if b.get("type") != "error":
        return None
    err = as_dict(b.get("error"))
    return f"{as_str(err.get('type')) or 'error'}: {as_str(err.get('message')) or ''}".strip()


def parse_body(body: Any) -> Result:
    res = Result(response=body, finished=isinstance(body, dict))
    b = as_dict(body)
    res.model = as_str(b.get("model"))
    res.usage = usage_from(b.get("usage"))
    res.error = error_from(body)
    for block in as_list(b.get("content")):
        block = as_dict(block)
        if block.get("type") in TOOL_BLOCKS:
            add_tool(res.called_tools, block.get("name"))
    return res


class StreamParser:
    """Reassembles a Messages event stream into the final `message` object."""

    def __init__(self) -> None:
        self.res = Result()
        self._message: dict[str, Any] = {}
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._partial_json: dict[int, str] = {}

    def on_event(self, event: Event, chunk_index: int) -> None:
        data = as_dict(load_json(event.data))
        kind = as_str(data.get("type")) or event.event
        if kind == "message_start":
            self._message = dict(as_dict(data.get("message")))
            self.res.model = as_str(self._message.get("model"))
            self._merge_usage(self._message.get("usage"))
        elif kind == "content_block_start":
            index = as_int(data.get("index")) or 0
            self._blocks[index] = dict(as_dict(data.get("content_block")))
        elif kind == "content_block_delta":
            self._on_delta(as_int(data.get("index")) or 0, as_dict(data.get("delta")))
            if self.res.first_content_chunk is None:
                self.res.first_content_chunk = chunk_index
        elif kind == "content_block_stop":
            index = as_int(data.get("index")) or 0
            if index in self._partial_json and index in self._blocks:
                parsed = load_json(self._partial_json.pop(index) or "{}")
                self._blocks[index]["input"] = parsed if parsed is not None else {}
        elif kind == "message_delta":
            delta = as_dict(data.get("delta"))
            self._message.update({k: v for k, v in delta.items() if v is not None})
            self._merge_usage(data.get("usage"))
        elif kind == "message_stop":
            self.res.finished = True
        elif kind == "error":
            self.res.error = error_from(data)

    def _merge_usage(self, usage: Any) -> None:
        # Every count in a later event replaces the earlier one (they are cumulative).
        self._usage.update({k: v for k, v in as_dict(usage).items() if v is not None})

    def _on_delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            block["text"] = block.get("text", "") + delta["text"]
            self.res.output_text += delta["text"]
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            self._partial_json[index] = self._partial_json.get(index, "") + delta["partial_json"]
            self.res.output_text += delta["partial_json"]
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
            self.res.output_text += delta["thinking"]
        elif kind == "signature_delta" and isinstance(delta.get("signature"), str):
            block["signature"] = block.get("signature", "") + delta["signature"]

    def finish(self) -> Result:
        for index, text in self._partial_json.items():  # a stream cut before block stop
            if index in self._blocks:
                self._blocks[index]["input"] = load_json(text or "{}") or {"_partial": text}
        content = [self._blocks[i] for i in sorted(self._blocks)]
        for block in content:
            if block.get("type") in TOOL_BLOCKS:
                add_tool(self.res.called_tools, block.get("name"))
        if self._message or content:
            self._message["content"] = content
            self._message["usage"] = self._usage or None
        self.res.response = self._message or None
        self.res.usage = usage_from(self._usage)
        return self.res
