"""Walkers for OpenAI's two request shapes: Chat Completions and Responses.

Chat-compatible servers (vLLM, Ollama, Groq, OpenRouter...) share the chat walker.
Framing follows OpenAI's cookbook: every message costs 3 tokens plus its role
(and name), and the reply is primed with 3 more; the priming is charged to the
last message, the turn that asked for the reply.
"""

from __future__ import annotations

from typing import Any

from . import media
from .collect import (
    CALLS,
    HISTORY,
    RESULTS,
    SYSTEM,
    THINKING,
    USER,
    Builder,
    fingerprint,
)

ROLES = {
    "system": SYSTEM,
    "developer": SYSTEM,
    "user": USER,
    "assistant": HISTORY,
    "tool": RESULTS,
    "function": RESULTS,
    "ipython": RESULTS,
}
PER_MESSAGE = 3
PRIMING = 3
UNKNOWN_TOOL = "(unknown tool)"


def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _name(value: Any, default: str = UNKNOWN_TOOL) -> str:
    return value if isinstance(value, str) and value else default


def _image(b: Builder, url: Any, detail: Any) -> None:
    split = media.split_data_url(url) if isinstance(url, str) else None
    data = split[1] if split else None
    b.media(
        "image", media.image_cost(b.fam, b.model, data, detail if isinstance(detail, str) else None)
    )


def _file(b: Builder, f: dict) -> None:
    data = f.get("file_data")
    split = media.split_data_url(data) if isinstance(data, str) else None
    mime, raw = split if split else ("application/pdf", data if isinstance(data, str) else None)
    b.media(*media.media_cost(b.fam, b.model, mime, raw))


def content(b: Builder, comp: str, value: Any, child: str | None = None) -> None:
    """Message content: a string, or parts (text, images, audio, files) of either API."""
    if not isinstance(value, list):
        return b.text(comp, value, child)
    for part in value:
        if not isinstance(part, dict):
            b.text(comp, part, child)
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text", "summary_text", "reasoning_text"):
            b.text(comp, part.get("text"), child)
        elif kind == "refusal":
            b.text(comp, part.get("refusal"), child)
        elif kind == "image_url":
            iu = part.get("image_url")
            _image(b, _d(iu).get("url", iu), _d(iu).get("detail"))
        elif kind in ("input_image", "computer_screenshot"):
            _image(b, part.get("image_url"), part.get("detail"))
        elif kind == "input_audio":
            audio = _d(part.get("input_audio"))
            data = audio.get("data")
            b.media("audio", media.audio_cost(b.fam, data if isinstance(data, str) else None))
        elif kind == "file":
            _file(b, _d(part.get("file")))
        elif kind == "input_file":
            _file(b, part)
        else:
            b.loose(comp, part, child)


def _call(b: Builder, call_id: Any, name: Any, args: Any) -> None:
    label = _name(name, "(unnamed tool)")
    if isinstance(call_id, str):
        b.names[call_id] = label
    b.text(CALLS, label, label)
    b.json(CALLS, args, label)


def chat(b: Builder, req: dict) -> None:
    """OpenAI Chat Completions (and compatibles): `messages`, `tools`, legacy `functions`."""
    b.units(_chat_tool, _list(req.get("tools")) + _list(req.get("functions")))
    fmt = _d(req.get("response_format"))
    if fmt.get("type") == "json_schema":  # OpenAI renders the schema into the prompt
        b.json(SYSTEM, fmt.get("json_schema"))
    messages = req.get("messages")
    b.units(_chat_message, messages if isinstance(messages, list) else _list(messages))
    if b.last_home:
        b.add(b.last_home, PRIMING)


def _chat_tool(b: Builder, t: Any) -> None:
    t = _d(t)
    spec = t.get("function") if isinstance(t.get("function"), dict) else None
    if spec is None and isinstance(t.get("custom"), dict):
        spec = t["custom"]
    if spec is None and "name" in t:
        spec = t  # legacy `functions` entry
    if spec is None:
        b.tool(t.get("type"), spec=t)
    else:
        b.tool(
            spec.get("name"), spec.get("description"), spec.get("parameters") or spec.get("format")
        )


def _chat_message(b: Builder, m: Any) -> None:
    if not isinstance(m, dict):
        b.hashes.append(fingerprint(m))
        b.begin()
        b.loose(USER, m)
        return b.end(USER, PER_MESSAGE)
    role = m.get("role") if isinstance(m.get("role"), str) else ""
    comp = ROLES.get(role, USER)
    if comp != SYSTEM:
        b.hashes.append(fingerprint(m))
    b.begin()
    child = None
    if comp == RESULTS:
        child = b.name_of(m.get("tool_call_id")) or _name(m.get("name"))
    content(b, comp, m.get("content"), child)
    if role == "assistant":
        for key in ("reasoning_content", "reasoning"):  # DeepSeek / vLLM style
            b.text(THINKING, m.get(key))
        for r in _list(m.get("reasoning_details")):  # OpenRouter
            b.text(THINKING, _d(r).get("text") or _d(r).get("summary"))
            b.opaque(THINKING, _d(r).get("data"))
        b.text(HISTORY, m.get("refusal"))
        for tc in _list(m.get("tool_calls")):
            tc = _d(tc)
            fn = _d(tc.get("function") or tc.get("custom"))
            _call(b, tc.get("id"), fn.get("name"), fn.get("arguments", fn.get("input")))
        if isinstance(m.get("function_call"), dict):
            _call(b, None, m["function_call"].get("name"), m["function_call"].get("arguments"))
    overhead = PER_MESSAGE + b.enc_count(role)
    if isinstance(m.get("name"), str):
        overhead += 1 + b.enc_count(m["name"])
    b.end(comp, overhead)


def responses(b: Builder, req: dict) -> None:
    """OpenAI Responses: `instructions`, `input` (a string or items), flat `tools`."""
    if any(req.get(k) for k in ("previous_response_id", "conversation", "prompt")):
        b.server_side = True  # history or a stored prompt lives on OpenAI's side
    instructions = req.get("instructions")
    if isinstance(instructions, list):
        b.units(_item, instructions, True)
    else:
        b.text(SYSTEM, instructions)
    b.units(_responses_tool, _list(req.get("tools")))
    fmt = _d(_d(req.get("text")).get("format"))
    if fmt.get("type") == "json_schema":
        b.json(SYSTEM, fmt.get("schema"))
    items = req.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    b.units(_item, items if isinstance(items, list) else _list(items))
    if b.last_home:
        b.add(b.last_home, PRIMING)


def _responses_tool(b: Builder, t: Any) -> None:
    t = _d(t)
    kind = t.get("type")
    if kind == "function" or (kind == "custom" and "name" in t):
        b.tool(t.get("name"), t.get("description"), t.get("parameters") or t.get("format"))
    elif kind == "mcp":
        b.tool(f"mcp:{_name(t.get('server_label'), 'server')}", spec=t)
    else:
        b.tool(kind, spec=t)


def _item(b: Builder, item: Any, system: bool = False) -> None:
    if not isinstance(item, dict):
        item = {"role": "user", "content": item}
    kind = item.get("type") if isinstance(item.get("type"), str) else "message"
    role = item.get("role") if isinstance(item.get("role"), str) else ""
    comp = SYSTEM if system else ROLES.get(role, USER)
    if comp != SYSTEM:
        b.hashes.append(fingerprint(item))
    b.begin()
    call_id = item.get("call_id")
    if kind == "message" or "role" in item:
        content(b, comp, item.get("content"))
    elif kind in ("function_call", "custom_tool_call"):
        _call(b, call_id, item.get("name"), item.get("arguments", item.get("input")))
    elif kind == "mcp_call":
        _call(b, item.get("id"), item.get("name"), item.get("arguments"))
        content(b, RESULTS, item.get("output"), _name(item.get("name")))
    elif kind == "mcp_list_tools":
        for t in _list(item.get("tools")):
            t = _d(t)
            b.tool(t.get("name"), t.get("description"), t.get("input_schema"))
    elif kind == "reasoning":
        for part in _list(item.get("summary")) + _list(item.get("content")):
            b.text(THINKING, _d(part).get("text"))
        b.opaque(THINKING, item.get("encrypted_content"))
    elif kind == "image_generation_call":
        b.media("image", media.image_cost(b.fam, b.model, item.get("result")))
    elif kind == "item_reference":
        b.server_side = True
    elif kind.endswith("_output"):
        name = b.name_of(call_id) or kind.removesuffix("_call_output").removesuffix("_output")
        out = item.get("output")
        content(b, RESULTS, out if isinstance(out, (str, list)) else [out], name)
    elif kind.endswith("_call"):
        name = kind.removesuffix("_call")
        if isinstance(call_id, str):
            b.names[call_id] = name
        b.text(CALLS, item.get("code"), name)
        b.loose(CALLS, item.get("action") or item.get("queries"), name)
        b.loose(RESULTS, item.get("results") or item.get("outputs"), name)
    else:
        b.loose(comp, item)
    b.end(comp, PER_MESSAGE + b.enc_count(role))
