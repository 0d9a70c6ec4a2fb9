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


class StreamParser:
    """Reassembles a `chat.completion.chunk` stream into one `chat.completion`.

    The event loop (`[DONE]`, errors, model, usage) is shared by every OpenAI-style
    stream; a subclass only says what a choice carries (`_on_choice`, `finish`).
    """

    HEAD_KEYS = ("id", "created", "system_fingerprint")

    def __init__(self) -> None:
        self.res = Result()
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}

    def on_event(self, event: Event, chunk_index: int) -> None:
        if event.data.strip() == "[DONE]":
            self.res.finished = True
            return
        data = as_dict(load_json(event.data))
        if not data:
            return
        if "error" in data:
            self.res.error = error_from(data)
        if not self._head:
            self._head = {k: data[k] for k in self.HEAD_KEYS if k in data}
        self.res.model = self.res.model or as_str(data.get("model"))
        usage = data.get("usage") or as_dict(data.get("x_groq")).get("usage")
        if usage:
            self.res.usage = usage_from(usage)
        for choice in as_list(data.get("choices")):
            self._on_choice(as_dict(choice), chunk_index)

    def _on_choice(self, choice: dict[str, Any], chunk_index: int) -> None:
        index = as_int(choice.get("index")) or 0
        slot = self._choices.setdefault(index, {"role": "assistant", "content": "", "tools": {}})
        delta = as_dict(choice.get("delta"))
        content = delta.get("content")
        produced = False
        if isinstance(content, str) and content:
            slot["content"] += content
            self.res.output_text += content
            produced = True
        for key in REASONING_KEYS:
            if isinstance(delta.get(key), str) and delta[key]:
                slot[key] = slot.get(key, "") + delta[key]
                self.res.output_text += delta[key]
                produced = True
        for call in as_list(delta.get("tool_calls")):
            call = as_dict(call)
            tool = slot["tools"].setdefault(
                as_int(call.get("index")) or 0,
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            tool["id"] = tool["id"] or as_str(call.get("id"))
            fn = as_dict(call.get("function"))
            if as_str(fn.get("name")):
                tool["function"]["name"] += fn["name"]
            if as_str(fn.get("arguments")):
                tool["function"]["arguments"] += fn["arguments"]
                self.res.output_text += fn["arguments"]
            produced = True
        if choice.get("finish_reason"):
            slot["finish_reason"] = choice["finish_reason"]
        if produced and self.res.first_content_chunk is None:
            self.res.first_content_chunk = chunk_index

    def finish(self) -> Result:
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            message: dict[str, Any] = {"role": slot["role"], "content": slot["content"] or None}
            for key in REASONING_KEYS:
                if key in slot:
                    message[key] = slot[key]
            if slot["tools"]:
                message["tool_calls"] = [slot["tools"][i] for i in sorted(slot["tools"])]
                for call in message["tool_calls"]:
                    add_tool(self.res.called_tools, call["function"]["name"])
            choices.append(
                {"index": index, "message": message, "finish_reason": slot.get("finish_reason")}
            )
        self.res.response = {
            **self._head,
            "object": "chat.completion",
            "model": self.res.model,
            "choices": choices,
            "usage": self.res.usage.raw if self.res.usage else None,
        }
        return self.res
