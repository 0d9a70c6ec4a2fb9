"""Walkers for Anthropic Messages and Gemini generateContent requests.

Neither tokenizer is public, so every count here is an estimate that attribution
scales to the reported total. Framing is a guess of 3 tokens per turn; the fixed
costs Anthropic documents (the tool-use system prompt, its hidden schemas for
bash / text editor / computer use) are added so the scaling starts closer to truth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import media
from .collect import (
    ATTACH,
    CALLS,
    HISTORY,
    RESULTS,
    SYSTEM,
    THINKING,
    TOOLS,
    USER,
    Builder,
    fingerprint,
)
from .walk_openai import UNKNOWN_TOOL, _d, _list, _name

PER_MESSAGE = 3
MAX_NESTING = 8  # tool results inside tool results: deeper is not a real request
# docs.anthropic.com tool use pricing: tokens of the tool-use system prompt
# (Claude 4.x / 3.7 / 3.5), and of Anthropic-defined tools whose schema is hidden.
TOOL_PROMPT = {"auto": 346, "none": 346, "any": 313, "tool": 313}
HIDDEN_SCHEMA = {"bash": 245, "text_editor": 700, "str_replace": 700, "computer": 735}


def _source(b: Builder, kind: str, block: dict) -> None:
    src = _d(block.get("source"))
    data = src.get("data") if isinstance(src.get("data"), str) else None
    stype = src.get("type")
    if kind == "image":
        b.media(
            "image", media.image_cost("anthropic", b.model, data if stype == "base64" else None)
        )
    elif stype == "text":  # a plain-text document is read as text
        b.text(ATTACH, data, "document")
    elif stype == "content":
        _blocks(b, ATTACH, src.get("content"), "document")
    else:
        mime = src.get("media_type") if isinstance(src.get("media_type"), str) else None
        b.media("document", media.document_cost("anthropic", mime, data))
    b.text(ATTACH, block.get("title"), "document" if kind != "image" else "image")
    b.text(ATTACH, block.get("context"), "document" if kind != "image" else "image")


def _blocks(b: Builder, comp: str, value: Any, child: str | None = None, depth: int = 0) -> None:
    """Anthropic content: a string or blocks. `comp` is where plain text goes."""
    if not isinstance(value, list) or depth > MAX_NESTING:
        return b.text(comp, value, child)
    for block in value:
        if not isinstance(block, dict):
            b.text(comp, block, child)
            continue
        kind = block.get("type")
        if kind == "text":
            b.text(comp, block.get("text"), child)
        elif kind in ("image", "document"):
            _source(b, kind, block)
        elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            name = _name(block.get("name"), "(unnamed tool)")
            if isinstance(block.get("id"), str):
                b.names[block["id"]] = name
            b.text(CALLS, name, name)
            b.json(CALLS, block.get("input"), name)
        elif kind in ("tool_result", "mcp_tool_result"):
            name = b.name_of(block.get("tool_use_id")) or UNKNOWN_TOOL
            _blocks(b, RESULTS, block.get("content"), name, depth + 1)
        elif isinstance(kind, str) and kind.endswith("_tool_result"):  # server tools
            name = b.name_of(block.get("tool_use_id")) or kind.removesuffix("_tool_result")
            _server_result(b, block.get("content"), name)
        elif kind == "thinking":
            b.text(THINKING, block.get("thinking"))  # the signature is opaque, not context
        elif kind == "redacted_thinking":
            b.opaque(THINKING, block.get("data"))
        elif kind == "search_result":
            b.text(comp, block.get("title"), child)
            b.text(comp, block.get("source"), child)
            _blocks(b, comp, block.get("content"), child, depth + 1)
        else:
            b.loose(comp, block, child)


def _server_result(b: Builder, content: Any, name: str) -> None:
    for r in _list(content):
        if isinstance(r, dict) and "encrypted_content" in r:  # web search results
            b.text(RESULTS, r.get("title"), name)
            b.text(RESULTS, r.get("url"), name)
            b.opaque(RESULTS, r.get("encrypted_content"), name)
        elif isinstance(r, dict) and r.get("type") in ("text", "image", "document"):
            _blocks(b, RESULTS, [r], name)
        else:
            b.loose(RESULTS, r, name)


def messages(b: Builder, req: dict) -> None:
    """Anthropic Messages: top-level `system`, `messages` of blocks, `tools`."""
    _blocks(b, SYSTEM, req.get("system"))
    tools = [t for t in _list(req.get("tools")) if isinstance(t, dict)]
    b.units(_anthropic_tool, tools)
    if tools:
        choice = _d(req.get("tool_choice")).get("type")
        b.add(TOOLS, TOOL_PROMPT.get(choice, 346) if isinstance(choice, str) else 346)
    fmt = _d(req.get("output_format"))  # structured outputs: the schema is prompt text
    b.json(SYSTEM, fmt.get("schema"))
    msgs = req.get("messages")
    b.units(_turn, msgs if isinstance(msgs, list) else _list(msgs), "content", "assistant", _blocks)


def _anthropic_tool(b: Builder, t: dict) -> None:
    kind = t.get("type") if isinstance(t.get("type"), str) else "custom"
    if kind == "custom" or "input_schema" in t:
        b.tool(t.get("name"), t.get("description"), t.get("input_schema"))
        return
    label = b.tool(t.get("name") or kind, spec=t)
    hidden = next((n for key, n in HIDDEN_SCHEMA.items() if kind.startswith(key)), 0)
    b.add(TOOLS, hidden, label)


def _turn(b: Builder, m: Any, field: str, model_role: str, walk: Callable[..., None]) -> None:
    """One turn of either API: `field` holds its content, `model_role` marks the model's."""
    b.hashes.append(fingerprint(m))
    m = m if isinstance(m, dict) else {field: m}
    comp = HISTORY if m.get("role") == model_role else USER
    b.begin()
    walk(b, comp, m.get(field))
    b.end(comp, PER_MESSAGE)


def _g(d: dict, camel: str) -> Any:
    """A Gemini field by its camelCase name, or the snake_case spelling the API also takes."""
    if camel in d:
        return d[camel]
    return d.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


def _parts(b: Builder, comp: str, parts: Any, depth: int = 0) -> None:
    if isinstance(parts, (str, dict)):
        parts = [parts]
    if depth > MAX_NESTING:
        return b.loose(comp, parts)
    for p in _list(parts):
        if not isinstance(p, dict):
            b.text(comp, p)
        elif "text" in p:
            b.text(THINKING if p.get("thought") else comp, p.get("text"))
        elif _g(p, "inlineData") is not None or _g(p, "fileData") is not None:
            blob = _d(_g(p, "inlineData") or _g(p, "fileData"))
            data = blob.get("data") if isinstance(blob.get("data"), str) else None
            b.media(*media.media_cost("gemini", b.model, _g(blob, "mimeType"), data))
        elif _g(p, "functionCall") is not None:
            call = _d(_g(p, "functionCall"))
            name = _name(call.get("name"), "(unnamed tool)")
            b.text(CALLS, name, name)
            b.json(CALLS, call.get("args"), name)
        elif _g(p, "functionResponse") is not None:
            resp = _d(_g(p, "functionResponse"))
            name = _name(resp.get("name"))
            b.json(RESULTS, resp.get("response"), name)
            _parts(b, RESULTS, resp.get("parts"), depth + 1)  # multimodal function responses
        elif _g(p, "executableCode") is not None:
            b.text(CALLS, _d(_g(p, "executableCode")).get("code"), "code_execution")
        elif _g(p, "codeExecutionResult") is not None:
            b.text(RESULTS, _d(_g(p, "codeExecutionResult")).get("output"), "code_execution")
        elif not (set(p) <= {"thoughtSignature", "thought_signature", "videoMetadata", "thought"}):
            b.loose(comp, p)


def gemini(b: Builder, req: dict) -> None:
    """Gemini generateContent: `systemInstruction`, `contents`, `tools` (either spelling)."""
    if _g(req, "cachedContent"):
        b.server_side = True
    system = _g(req, "systemInstruction")
    _parts(b, SYSTEM, _d(system).get("parts") if isinstance(system, dict) else system)
    b.units(_gemini_tool, _list(req.get("tools")))
    config = _d(_g(req, "generationConfig"))
    b.json(SYSTEM, _g(config, "responseSchema") or _g(config, "responseJsonSchema"))
    contents = _g(req, "contents")
    if isinstance(contents, (str, dict)):
        contents = [contents]
    b.units(_turn, _list(contents), "parts", "model", _parts)


def _gemini_tool(b: Builder, t: Any) -> None:
    for key, spec in _d(t).items():
        if key in ("functionDeclarations", "function_declarations"):
            for f in _list(spec):
                f = _d(f)
                schema = next((f[k] for k in _SCHEMA_KEYS if k in f), None)
                b.tool(f.get("name"), f.get("description"), schema)
        else:
            b.tool(key, spec={key: spec})


_SCHEMA_KEYS = ("parameters", "parametersJsonSchema", "parameters_json_schema")
