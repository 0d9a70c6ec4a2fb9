"""Legacy OpenAI completions (`POST /v1/completions`, Azure deployments, vLLM,
DeepSeek `/beta/completions`) and Mistral's FIM / agents `.../completions`.

Same usage object (and convention) as Chat Completions. Choices carry `text`
(legacy) or a chat `message` / `delta` (Mistral): both are read. Streams end in
`data: [DONE]` and carry usage only with `stream_options.include_usage`.
"""

from __future__ import annotations

from typing import Any

from . import openai_chat
from .base import Result, add_tool, as_dict, as_int, as_list, as_str
from .openai_chat import error_from, usage_from

API = "completions"
__all__ = ["API", "error_from", "parse_body", "usage_from", "StreamParser"]


def _choice_text(choice: dict[str, Any], key: str) -> tuple[str, list[Any]]:
    if isinstance(choice.get("text"), str):
        return choice["text"], []
    message = as_dict(choice.get(key))
    return as_str(message.get("content")) or "", as_list(message.get("tool_calls"))


def parse_body(body: Any) -> Result:
    res = Result(response=body, finished=isinstance(body, dict))
    b = as_dict(body)
    res.model = as_str(b.get("model"))
    res.usage = usage_from(b.get("usage"))
    res.error = error_from(body)
    for choice in as_list(b.get("choices")):
        text, calls = _choice_text(as_dict(choice), "message")
        res.output_text += text
        for call in calls:
            add_tool(res.called_tools, as_dict(as_dict(call).get("function")).get("name"))
    return res


class StreamParser(openai_chat.StreamParser):
    """Reassembles a completion stream into one `text_completion` object."""

    HEAD_KEYS = ("id", "created", "object")

    def _on_choice(self, choice: dict[str, Any], chunk_index: int) -> None:
        index = as_int(choice.get("index")) or 0
        slot = self._choices.get(index)
        if slot is None:
            slot = self._choices[index] = {"text": []}  # pieces, joined at finish
        text, calls = _choice_text(choice, "delta")
        for call in calls:
            add_tool(self.res.called_tools, as_dict(as_dict(call).get("function")).get("name"))
        if text:
            slot["text"].append(text)
            self._text.append(text)
            if self.res.first_content_chunk is None:
                self.res.first_content_chunk = chunk_index
        if choice.get("finish_reason"):
            slot["finish_reason"] = choice["finish_reason"]

    def finish(self) -> Result:
        choices = [
            {"index": i, "text": "".join(s["text"]), "finish_reason": s.get("finish_reason")}
            for i, s in sorted(self._choices.items())
        ]
        self.res.response = {
            **self._head,
            "model": self.res.model,
            "choices": choices,
            "usage": self.res.usage.raw if self.res.usage else None,
        }
        self.res.output_text = "".join(self._text)
        return self.res
