"""OpenAI Responses (`POST /v1/responses`, Azure `/openai/responses`, `/openai/v1/responses`).

Wire convention: `usage.input_tokens` includes `input_tokens_details.cached_tokens`
and `output_tokens` includes `output_tokens_details.reasoning_tokens`, as in
llmprof's convention. A stream is SSE (`event: <type>` plus a `data:` object with
the same `type`); the terminal `response.completed`, `response.incomplete` and
`response.failed` events carry the whole final `response`, usage included, and
that object is what gets recorded as the response.

A request with `previous_response_id` (or a `conversation`) sends only the new
turn: the history lives on OpenAI's side. `history_of(request)` says so, and
extract records it as `trace.analysis["history"] = "server-side"`.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import Result, Usage, add_tool, as_dict, as_int, as_list, as_str, load_json

API = "responses"
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
SNAPSHOTS = ("response.created", "response.in_progress", "response.queued")
# How a snapshot event's data begins as OpenAI sends it (compact, `type` first).
_SNAPSHOTS = tuple(f'{{"type":"{kind}",' for kind in SNAPSHOTS)
# Output items that are a call to a named tool (function, custom or MCP tool).
NAMED_CALLS = ("function_call", "custom_tool_call", "mcp_call")


def usage_from(raw: Any) -> Usage | None:
    u = as_dict(raw)
    if not u:
        return None
    input_details = as_dict(u.get("input_tokens_details"))
    output_details = as_dict(u.get("output_tokens_details"))
    return Usage(
        prompt_tokens=as_int(u.get("input_tokens")),
        completion_tokens=as_int(u.get("output_tokens")),
        cached_tokens=as_int(input_details.get("cached_tokens")),
        cache_write_tokens=as_int(input_details.get("cache_write_tokens")),
        reasoning_tokens=as_int(output_details.get("reasoning_tokens")),
        raw=raw,
    )


def error_from(body: Any) -> str | None:
    """`{"error": {code, message}}` (HTTP errors, a failed response) or an `error` event."""
    b = as_dict(body)
    err = as_dict(b.get("error")) or (b if b.get("type") == "error" else {})
    if not err:
        return None
    kind = as_str(err.get("code")) or as_str(err.get("type")) or "error"
    return f"{kind}: {as_str(err.get('message')) or ''}".strip()


def history_of(request: Any) -> dict[str, Any] | None:
    """How much of the conversation lives upstream, when some of it does."""
    req = as_dict(request)
    prev, conv = as_str(req.get("previous_response_id")), req.get("conversation")
    if not prev and not conv:
        return None
    out: dict[str, Any] = {"history": "server-side"}
    if prev:
        out["previous_response_id"] = prev
    if conv:
        out["conversation"] = as_str(conv) or as_str(as_dict(conv).get("id"))
    return out


def _read_output(res: Result, output: Any, text: bool) -> None:
    for item in as_list(output):
        item = as_dict(item)
        kind = as_str(item.get("type")) or ""
        if kind in NAMED_CALLS:
            add_tool(res.called_tools, item.get("name"))
        elif kind.endswith("_call"):  # built-in tools: web_search_call -> web_search
            add_tool(res.called_tools, kind[: -len("_call")])
        if not text:
            continue
        res.output_text += as_str(item.get("arguments")) or as_str(item.get("input")) or ""
        for part in as_list(item.get("content")) + as_list(item.get("summary")):
            res.output_text += as_str(as_dict(part).get("text")) or ""


def _read_response(res: Result, body: Any, text: bool = True) -> None:
    b = as_dict(body)
    res.model = as_str(b.get("model")) or res.model
    res.usage = usage_from(b.get("usage")) or res.usage
    res.error = error_from(body) or res.error
    _read_output(res, b.get("output"), text)


def parse_body(body: Any) -> Result:
    res = Result(response=body, finished=isinstance(body, dict))
    _read_response(res, body)
    return res


class StreamParser:
    """Keeps the final `response` object; rebuilds it from the deltas if the stream is cut.

    A delta's text is kept in `_pending` as a list of pieces per (dict, key) it
    extends, joined only when the rebuilt response is needed: adding to a string
    held in a dict copies it every time, and a stream that completes never needs it.
    """

    def __init__(self) -> None:
        self.res = Result()
        self._response: dict[str, Any] = {}
        self._items: dict[int, dict[str, Any]] = {}
        self._final: dict[str, Any] | None = None
        self._pending: dict[tuple[int, str], tuple[dict[str, Any], list[str]]] = {}
        self._text: list[str] = []
        self._snapshots: list[tuple[Event, int]] = []

    def on_event(self, event: Event, chunk_index: int) -> None:
        if event.data.startswith(_SNAPSHOTS):
            # A copy of the response before any output (and as big as the request's
            # instructions and tools): only read if the stream ends without a
            # terminal response that names its model, so only parsed then.
            self._snapshots.append((event, chunk_index))
            return
        self._on_data(as_dict(load_json(event.data)), event, chunk_index)

    def _on_data(self, data: dict[str, Any], event: Event, chunk_index: int) -> None:
        kind = as_str(data.get("type")) or event.event
        if kind.endswith(".delta"):
            delta = as_str(data.get("delta"))
            if delta:
                self._text.append(delta)
                if self.res.first_content_chunk is None:
                    self.res.first_content_chunk = chunk_index
                self._on_delta(kind, data, delta)
        elif kind in SNAPSHOTS:
            self._response = dict(as_dict(data.get("response"))) or self._response
            self.res.model = as_str(self._response.get("model")) or self.res.model
        elif kind in ("response.output_item.added", "response.output_item.done"):
            index = as_int(data.get("output_index")) or 0
            self._items[index] = dict(as_dict(data.get("item")))
        elif kind in TERMINAL:
            self._final = as_dict(data.get("response")) or None
            self.res.finished = True
        elif kind == "error":
            self.res.error = error_from(data)

    def _on_delta(self, kind: str, data: dict[str, Any], delta: str) -> None:
        index = as_int(data.get("output_index")) or 0
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = {}
        if kind == "response.function_call_arguments.delta":
            self._append(item, "arguments", delta)
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            index = as_int(data.get("content_index")) or 0
            content = item.get("content")
            if not isinstance(content, list):  # a malformed item must not lose the call
                content = item["content"] = []
            while len(content) <= index:
                content.append({"type": "output_text", "text": ""})
            self._append(content[index], "text", delta)

    def _append(self, target: dict[str, Any], key: str, text: str) -> None:
        # The entry holds `target`, so its id is not reused while the entry lives.
        entry = self._pending.get((id(target), key))
        if entry is None:
            entry = self._pending[(id(target), key)] = (target, [as_str(target.get(key)) or ""])
        entry[1].append(text)

    def finish(self) -> Result:
        self.res.output_text = "".join(self._text)
        if self._final is None or not as_str(self._final.get("model")):
            for event, chunk_index in self._snapshots:  # they only set the response and model
                self._on_data(as_dict(load_json(event.data)), event, chunk_index)
        if self._final is not None:
            self.res.response = self._final
            _read_response(self.res, self._final, text=False)
            return self.res
        # Cut before the terminal event: what arrived so far.
        for (_, key), (target, pieces) in self._pending.items():
            target[key] = "".join(pieces)
        items = [self._items[i] for i in sorted(self._items)]
        if self._response or items:
            self.res.response = {**self._response, "output": items}
        _read_output(self.res, items, text=False)
        return self.res
