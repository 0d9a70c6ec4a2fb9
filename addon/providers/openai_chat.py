"""OpenAI Chat Completions (`POST /v1/chat/completions`) and compatible servers.

Wire convention: `prompt_tokens` already includes `prompt_tokens_details.cached_tokens`,
and `completion_tokens` includes `completion_tokens_details.reasoning_tokens`, which
is llmprof's convention too. Streams carry usage only when the client asked for
`stream_options.include_usage` (a final chunk with `choices: []`); Groq puts it
under `x_groq.usage`, DeepSeek names cache hits `prompt_cache_hit_tokens`.

xAI (and Gemini's OpenAI-compatible endpoint) count reasoning OUTSIDE
`completion_tokens`; their `total_tokens` is prompt + completion + reasoning. That
sum is unambiguous whenever reasoning > 0, so it decides: completion then gets the
reasoning added, and every provider lands in the one convention.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import Result, Usage, add_tool, as_dict, as_int, as_list, as_str, load_json

API = "chat"
# Side channels of a delta: refusals, and reasoning text (DeepSeek and vLLM
# `reasoning_content`, OpenRouter and newer vLLM `reasoning`).
REASONING_KEYS = ("refusal", "reasoning_content", "reasoning")


def usage_from(raw: Any) -> Usage | None:
    u = as_dict(raw)
    if not u:
        return None
    prompt_details = as_dict(u.get("prompt_tokens_details"))
    completion_details = as_dict(u.get("completion_tokens_details"))
    cached = as_int(prompt_details.get("cached_tokens"))
    if cached is None:
        cached = as_int(u.get("prompt_cache_hit_tokens"))  # DeepSeek
    prompt = as_int(u.get("prompt_tokens"))
    completion = as_int(u.get("completion_tokens"))
    reasoning = as_int(completion_details.get("reasoning_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output_total(
            prompt, completion, reasoning, as_int(u.get("total_tokens"))
        ),
        cached_tokens=cached,
        cache_write_tokens=as_int(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=reasoning,
        raw=raw,
    )


def output_total(
    prompt: int | None, completion: int | None, reasoning: int | None, total: int | None
) -> int | None:
    """`completion`, plus `reasoning` when the provider reported it on top (xAI)."""
    if completion is not None and reasoning and prompt is not None and total is not None:
        if total == prompt + completion + reasoning:
            return completion + reasoning
    return completion


def error_from(body: Any) -> str | None:
    err = as_dict(as_dict(body).get("error"))
    if not err:
        return None
    # `code` is the specific one (rate_limit_exceeded, context_length_exceeded); `type`
    # is a broad class (requests, invalid_request_error).
    kind = as_str(err.get("code")) or as_str(err.get("type")) or "error"
    return f"{kind}: {as_str(err.get('message')) or ''}".strip()


def parse_body(body: Any) -> Result:
    res = Result(response=body, finished=isinstance(body, dict))
    b = as_dict(body)
    res.model = as_str(b.get("model"))
    res.usage = usage_from(b.get("usage"))
    res.error = error_from(body)
    for choice in as_list(b.get("choices")):
        message = as_dict(as_dict(choice).get("message"))
        res.output_text += as_str(message.get("content")) or ""
        for call in as_list(message.get("tool_calls")):
            fn = as_dict(as_dict(call).get("function"))
            add_tool(res.called_tools, fn.get("name"))
            res.output_text += as_str(fn.get("arguments")) or ""
        add_tool(res.called_tools, as_dict(message.get("function_call")).get("name"))
    return res


class _Choice:
    """One streamed choice: its text as pieces, joined once the stream ends."""

    __slots__ = ("content", "side", "tools", "finish_reason")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.side: dict[str, list[str]] = {}  # REASONING_KEYS that arrived
        self.tools: dict[int, _Call] = {}
        self.finish_reason: Any = None


class _Call:
    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: list[str] = []
        self.arguments: list[str] = []

    def message(self) -> dict[str, Any]:
        function = {"name": "".join(self.name), "arguments": "".join(self.arguments)}
        return {"id": self.id, "type": "function", "function": function}


class StreamParser:
    """Reassembles a `chat.completion.chunk` stream into one `chat.completion`.

    The event loop (`[DONE]`, errors, model, usage) is shared by every OpenAI-style
    stream; a subclass only says what a choice carries (`_on_choice`, `finish`).
    Text is kept as lists of pieces (`_text` is the whole output) and joined once
    at `finish`: adding to a string held by an object copies it every time.
    """

    HEAD_KEYS = ("id", "created", "system_fingerprint")

    def __init__(self) -> None:
        self.res = Result()
        self._head: dict[str, Any] = {}
        self._choices: dict[int, Any] = {}
        self._text: list[str] = []

    def on_event(self, event: Event, chunk_index: int) -> None:
        if event.data.strip() == "[DONE]":
            self.res.finished = True
            return
        data = load_json(event.data)
        if not data or not isinstance(data, dict):
            return
        res = self.res
        if "error" in data:
            res.error = error_from(data)
        if not self._head:
            self._head = {k: data[k] for k in self.HEAD_KEYS if k in data}
        if not res.model:
            res.model = as_str(data.get("model"))
        usage = data.get("usage")
        if not usage and "x_groq" in data:
            usage = as_dict(data["x_groq"]).get("usage")
        if usage:
            res.usage = usage_from(usage)
        choices = data.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                self._on_choice(as_dict(choice), chunk_index)

    def _on_choice(self, choice: dict[str, Any], chunk_index: int) -> None:
        index = as_int(choice.get("index")) or 0
        slot = self._choices.get(index)
        if slot is None:
            slot = self._choices[index] = _Choice()
        delta = as_dict(choice.get("delta"))
        content = delta.get("content")
        produced = False
        if content and isinstance(content, str):
            slot.content.append(content)
            self._text.append(content)
            produced = True
        if content is None or len(delta) > 1:  # else `content` is all the delta holds
            for key in REASONING_KEYS:
                value = delta.get(key)
                if value and isinstance(value, str):
                    slot.side.setdefault(key, []).append(value)
                    self._text.append(value)
                    produced = True
            for call in as_list(delta.get("tool_calls")):
                self._on_call(slot, as_dict(call))
                produced = True
        if choice.get("finish_reason"):
            slot.finish_reason = choice["finish_reason"]
        if produced and self.res.first_content_chunk is None:
            self.res.first_content_chunk = chunk_index

    def _on_call(self, slot: _Choice, call: dict[str, Any]) -> None:
        index = as_int(call.get("index")) or 0
        tool = slot.tools.get(index)
        if tool is None:
            tool = slot.tools[index] = _Call()
        tool.id = tool.id or as_str(call.get("id"))
        fn = as_dict(call.get("function"))
        name, arguments = fn.get("name"), fn.get("arguments")
        if name and isinstance(name, str):
            tool.name.append(name)
        if arguments and isinstance(arguments, str):
            tool.arguments.append(arguments)
            self._text.append(arguments)

    def finish(self) -> Result:
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            content = "".join(slot.content) or None
            message: dict[str, Any] = {"role": "assistant", "content": content}
            for key in REASONING_KEYS:
                if key in slot.side:
                    message[key] = "".join(slot.side[key])
            if slot.tools:
                message["tool_calls"] = [slot.tools[i].message() for i in sorted(slot.tools)]
                for call in message["tool_calls"]:
                    add_tool(self.res.called_tools, call["function"]["name"])
            choices.append(
                {"index": index, "message": message, "finish_reason": slot.finish_reason}
            )
        self.res.response = {
            **self._head,
            "object": "chat.completion",
            "model": self.res.model,
            "choices": choices,
            "usage": self.res.usage.raw if self.res.usage else None,
        }
        self.res.output_text = "".join(self._text)
        return self.res
