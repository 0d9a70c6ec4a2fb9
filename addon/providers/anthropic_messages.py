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


# Delta type -> the field carrying its text, which is also the block key it extends.
_TEXT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}


class StreamParser:
    """Reassembles a Messages event stream into the final `message` object.

    Streamed text is kept as lists of pieces and joined at `finish` (adding to a
    string held in a dict copies it every time): `_pieces` per block and key,
    starting from what the block held, `_partial_json` per tool block.
    """

    def __init__(self) -> None:
        self.res = Result()
        self._message: dict[str, Any] = {}
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._pieces: dict[tuple[int, str], list[str]] = {}
        self._partial_json: dict[int, list[str]] = {}
        self._text: list[str] = []

    def on_event(self, event: Event, chunk_index: int) -> None:
        data = as_dict(load_json(event.data))
        kind = as_str(data.get("type")) or event.event
        if kind == "content_block_delta":
            self._on_delta(as_int(data.get("index")) or 0, as_dict(data.get("delta")))
            if self.res.first_content_chunk is None:
                self.res.first_content_chunk = chunk_index
        elif kind == "message_start":
            self._message = dict(as_dict(data.get("message")))
            self.res.model = as_str(self._message.get("model"))
            self._merge_usage(self._message.get("usage"))
        elif kind == "content_block_start":
            index = as_int(data.get("index")) or 0
            self._joined(index)  # into the block being replaced, which is then dropped
            self._blocks[index] = dict(as_dict(data.get("content_block")))
        elif kind == "content_block_stop":
            index = as_int(data.get("index")) or 0
            if index in self._partial_json and index in self._blocks:
                parsed = load_json("".join(self._partial_json.pop(index)) or "{}")
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
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = {"type": "text", "text": ""}
        kind = delta.get("type")
        if kind == "input_json_delta":
            partial = delta.get("partial_json")
            if isinstance(partial, str):
                self._partial_json.setdefault(index, []).append(partial)
                self._text.append(partial)
            return
        key = _TEXT_DELTAS.get(kind) if isinstance(kind, str) else None
        if key is None or not isinstance(delta.get(key), str):
            return
        pieces = self._pieces.get((index, key))
        if pieces is None:
            pieces = self._pieces[(index, key)] = [as_str(block.get(key)) or ""]
        pieces.append(delta[key])
        if key != "signature":
            self._text.append(delta[key])

    def _joined(self, index: int) -> None:
        """Writes the pending pieces of block `index` into it."""
        for key in ("text", "thinking", "signature"):
            pieces = self._pieces.pop((index, key), None)
            if pieces is not None:
                self._blocks[index][key] = "".join(pieces)

    def finish(self) -> Result:
        for index in {index for index, _ in self._pieces}:
            self._joined(index)
        for index, pieces in self._partial_json.items():  # a stream cut before block stop
            if index in self._blocks:
                text = "".join(pieces)
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
        self.res.output_text = "".join(self._text)
        return self.res
