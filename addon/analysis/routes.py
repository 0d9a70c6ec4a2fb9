"""Prompt templates ("routes"): which stable prefix a call was built from.

A team's spend is driven by a few templates: the same system prompt and tool set
sent again and again with different user input. A template's fingerprint is the
system prompt with its volatile parts masked (dates, times, UUIDs, hex ids, long
numbers, file paths) plus the sorted tool names, so "Today is 2026-12-04" and
"Today is 2026-12-05" are one template. Its label is the first meaningful 60
characters of the system prompt (header-like lines such as Claude Code's
`x-anthropic-billing-header: ...` skipped) and "+N tools".
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from . import memo

LABEL_CHARS = 60
NO_SYSTEM = "(no system prompt)"

# Order matters: the most specific shapes are masked first.
_MASKS = [
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<date>",
    ),
    (re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"), "<date>"),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp][Mm])?\b"), "<time>"),
    (
        re.compile(
            r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+(?:\d{1,2}\s+)?"
            r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?(?:\s+\d{1,2})?,?"
            r"(?:\s+\d{4})?",
            re.I,
        ),
        "<date>",
    ),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"(?:~|\.{1,2})?(?:/[\w.@+-]+){2,}/?"), "<path>"),
    (re.compile(r"\b[A-Za-z]:\\(?:[\w .-]+\\)*[\w .-]*"), "<path>"),
    (re.compile(r"\b\d{5,}\b"), "<num>"),
]
# "x-anthropic-billing-header: cc_version=...": a single token before the colon, no
# spaces in the value; "Note: be brief." is prose and is kept.
_HEADER_LINE = re.compile(r"^[\w.-]+:\s*\S+$")
_SPACE = re.compile(r"\s+")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(part) for part in content)
    if isinstance(content, dict):
        for key in ("text", "content", "parts"):
            if key in content:
                return _text(content[key])
    return ""


def system_text(api: str | None, request: Any) -> str:
    """The system prompt of a request, as one string ("" when there is none)."""
    if not isinstance(request, dict):
        return ""
    if api == "messages":
        return _text(request.get("system"))
    if api == "responses":
        text = _text(request.get("instructions"))
        items = request.get("input") if isinstance(request.get("input"), list) else []
        extra = [
            _text(i.get("content"))
            for i in items
            if isinstance(i, dict) and i.get("role") in ("system", "developer")
        ]
        return "\n".join([text, *extra]).strip()
    if api == "gemini":
        return _text(request.get("systemInstruction") or request.get("system_instruction"))
    messages = request.get("messages") if isinstance(request.get("messages"), list) else []
    return "\n".join(
        _text(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )


def mask(text: str) -> str:
    """The text with its volatile parts replaced."""
    for pattern, token in _MASKS:
        text = pattern.sub(token, text)
    return _SPACE.sub(" ", text).strip()


def label_of(system: str, tools: list[str]) -> str:
    head = NO_SYSTEM
    for line in system.splitlines():
        line = line.strip()
        if not line or _HEADER_LINE.match(line):  # blank, or "x-some-header: value"
            continue
        head = _SPACE.sub(" ", line)
        if len(head) > LABEL_CHARS:
            head = head[: LABEL_CHARS - 1].rstrip() + "…"
        break
    return f"{head}  +{len(tools)} tools" if tools else head


# (system prompt, tool names) -> (fingerprint, label): a template comes back call after
# call, and masking and labelling its system prompt are a dozen regex passes over it.
_ROUTES = memo.LRU(max_weight=4 << 20, max_items=20_000)


def route_of(
    api: str | None, request: Any, tools: list[str], system: str | None = None
) -> tuple[str, str] | None:
    """`(fingerprint, label)` of a call's template, or None when the request is unreadable.
    `system` is the request's `system_text`, when the caller already has it."""
    if not isinstance(request, dict):
        return None
    if system is None:
        system = system_text(api, request)
    names = tuple(sorted(set(tools)))
    found = _ROUTES.get((system, names))
    if found is None:
        key = mask(system) + "\x00" + "\x00".join(names)
        fingerprint = hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=8).hexdigest()
        found = fingerprint, label_of(system, list(names))
        weight = len(system) + sum(map(len, names)) + memo.ENTRY_OVERHEAD
        _ROUTES.put((system, names), found, weight)
    return found
