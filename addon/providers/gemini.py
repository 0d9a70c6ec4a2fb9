"""Google Gemini `models/{model}:generateContent` and `:streamGenerateContent`
(Developer API and Vertex AI `publishers/google/models/...`).

The model is in the URL path (`Shape.path_model`); the response names the
version that answered (`modelVersion`). Streams are SSE with `?alt=sse`, else one
JSON array sent element by element; each element (or event) is a whole
`GenerateContentResponse` whose `usageMetadata` is cumulative, so later counts win.

Wire convention (`usageMetadata`, camelCase on the wire, snake_case accepted):
`promptTokenCount` INCLUDES `cachedContentTokenCount`; `toolUsePromptTokenCount`
(prompts the model's built-in tools ran) is input on top of it;
`thoughtsTokenCount` is OUTSIDE `candidatesTokenCount` but billed as output. So
prompt = prompt + toolUse, completion = candidates + thoughts, reasoning = thoughts.
Zero counts are omitted on the wire (proto3), so a missing count next to a
`totalTokenCount` is read from the total.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import (
    Result,
    Usage,
    add_tool,
    as_dict,
    as_int,
    as_list,
    as_str,
    load_json,
    pick,
    sum_known,
)

API = "gemini"


def framing(request: Any, shape: Any) -> str:
    """`streamGenerateContent` without `alt=sse` is one JSON array, sent element by element."""
    return "jsonarray" if shape.stream else "json"


def usage_from(raw: Any) -> Usage | None:
    u = as_dict(raw)
    if not u:
        return None
    prompt = sum_known(
        as_int(pick(u, "promptTokenCount", "prompt_token_count")),
        as_int(pick(u, "toolUsePromptTokenCount", "tool_use_prompt_token_count")),
    )
    thoughts = as_int(pick(u, "thoughtsTokenCount", "thoughts_token_count"))
    completion = sum_known(
        as_int(pick(u, "candidatesTokenCount", "candidates_token_count")), thoughts
    )
    total = as_int(pick(u, "totalTokenCount", "total_token_count"))
    if completion is None and total is not None and prompt is not None:
        completion = max(total - prompt, 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=as_int(pick(u, "cachedContentTokenCount", "cached_content_token_count")),
        reasoning_tokens=thoughts,
        raw=raw,
    )


def error_from(body: Any) -> str | None:
    """`{"error": {code, message, status}}`, or a prompt the safety filters blocked."""
    b = as_dict(body)
    err = as_dict(b.get("error"))
    if err:
        kind = as_str(err.get("status")) or str(as_int(err.get("code")) or "error")
        return f"{kind}: {as_str(err.get('message')) or ''}".strip()
    blocked = as_str(
        pick(as_dict(pick(b, "promptFeedback", "prompt_feedback")), "blockReason", "block_reason")
    )
    return f"prompt_blocked: {blocked}" if blocked else None


def _part_text(part: dict[str, Any]) -> str:
    text = as_str(part.get("text")) or ""
    if "functionCall" not in part and "function_call" not in part:
        return text
    call = as_dict(pick(part, "functionCall", "function_call"))
    if call:
        args = call.get("args")
        text += as_str(call.get("name")) or ""
        text += "" if args is None else str(args)
    return text


def _tools_in(res: Result, candidates: Any) -> None:
    for cand in as_list(candidates):
        for part in as_list(as_dict(as_dict(cand).get("content")).get("parts")):
            add_tool(
                res.called_tools,
                as_dict(pick(as_dict(part), "functionCall", "function_call")).get("name"),
            )


def parse_body(body: Any) -> Result:
    if isinstance(body, list):  # a whole JSON-array stream, or an error sent as one
        parser = StreamParser()
        for i, element in enumerate(body):
            parser.on_object(element, i)
        res = parser.finish()
        res.first_content_chunk = None
        return res
    res = Result(response=body, finished=isinstance(body, dict))
    b = as_dict(body)
    res.model = as_str(pick(b, "modelVersion", "model_version"))
    res.usage = usage_from(pick(b, "usageMetadata", "usage_metadata"))
    res.error = error_from(body)
    _tools_in(res, b.get("candidates"))
    res.output_text = "".join(
        _part_text(as_dict(part))
        for cand in as_list(b.get("candidates"))
        for part in as_list(as_dict(as_dict(cand).get("content")).get("parts"))
    )
    return res


_HEAD_KEYS = ("responseId", "response_id", "modelVersion", "model_version", "createTime")
_PLAIN = frozenset(("text", "thought"))  # a part holding only these merges with the last


class StreamParser:
    """Merges streamed `GenerateContentResponse` chunks into one response.

    Consecutive plain text parts become one part; its text is kept as pieces
    (`_merging`) and joined when another part starts or the stream ends, since
    adding to a string in a dict copies it every time.
    """

    def __init__(self) -> None:
        self.res = Result()
        self._head: dict[str, Any] = {}
        self._usage: dict[str, Any] = {}
        self._candidates: dict[int, dict[str, Any]] = {}
        # candidate -> (the part being merged into, its text pieces)
        self._merging: dict[int, tuple[dict[str, Any], list[str]]] = {}
        self._text: list[str] = []

    def on_event(self, event: Event, chunk_index: int) -> None:
        self.on_object(load_json(event.data), chunk_index)

    def on_object(self, obj: Any, chunk_index: int) -> None:
        """One parsed `GenerateContentResponse` (a stream event or array element)."""
        data = as_dict(obj)
        if not data:
            return
        if "error" in data or "promptFeedback" in data or "prompt_feedback" in data:
            self.res.error = error_from(data) or self.res.error
        for key in _HEAD_KEYS:
            if key in data:
                self._head[key] = data[key]
        if feedback := pick(data, "promptFeedback", "prompt_feedback"):
            self._head["promptFeedback"] = feedback
        self.res.model = as_str(pick(data, "modelVersion", "model_version")) or self.res.model
        usage = as_dict(pick(data, "usageMetadata", "usage_metadata"))
        self._usage.update({k: v for k, v in usage.items() if v is not None})
        for cand in as_list(data.get("candidates")):
            self._on_candidate(as_dict(cand), chunk_index)

    def _on_candidate(self, cand: dict[str, Any], chunk_index: int) -> None:
        index = as_int(cand.get("index")) or 0
        slot = self._candidates.get(index)
        if slot is None:
            slot = self._candidates[index] = {"parts": []}
        for key, value in cand.items():
            if key != "content" and key != "index":
                slot[key] = value
        content = as_dict(cand.get("content"))
        if as_str(content.get("role")):
            slot["role"] = content["role"]
        for part in as_list(content.get("parts")):
            part = as_dict(part)
            text = _part_text(part)
            if not text and not part:
                continue
            self._text.append(text)
            if text and self.res.first_content_chunk is None:
                self.res.first_content_chunk = chunk_index
            parts = slot["parts"]
            last = parts[-1] if parts else None
            if (
                last is not None
                and part.keys() <= _PLAIN
                and last.keys() <= _PLAIN
                and isinstance(part.get("text"), str)
                and isinstance(last.get("text"), str)
                and bool(part.get("thought")) == bool(last.get("thought"))
            ):
                merging = self._merging.get(index)
                if merging is None or merging[0] is not last:
                    self._merged(index)
                    merging = self._merging[index] = (last, [last["text"]])
                merging[1].append(part["text"])
            else:
                self._merged(index)
                parts.append(dict(part))

    def _merged(self, index: int) -> None:
        """Joins the pieces of the part candidate `index` was merging into its text."""
        merging = self._merging.pop(index, None)
        if merging is not None:
            merging[0]["text"] = "".join(merging[1])

    def finish(self) -> Result:
        for index in list(self._merging):
            self._merged(index)
        candidates = []
        for index in sorted(self._candidates):
            slot = dict(self._candidates[index])
            parts, role = slot.pop("parts"), slot.pop("role", "model")
            candidates.append({"content": {"role": role, "parts": parts}, **slot, "index": index})
        _tools_in(self.res, candidates)
        if candidates or self._usage or self._head:
            self.res.response = {
                "candidates": candidates,
                "usageMetadata": self._usage or None,
                **self._head,
            }
        self.res.usage = usage_from(self._usage)
        self.res.finished = any(c.get("finishReason") or c.get("finish_reason") for c in candidates)
        self.res.output_text = "".join(self._text)
        return self.res
