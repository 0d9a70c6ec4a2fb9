"""`llmprof_inject_usage`: get the usage of a stream whose client did not ask for it.

OpenAI-style chat and completions streams report usage only when the request says
`stream_options.include_usage`. With the option on, `inject_usage` adds it to the
request sent upstream (keeping the client's body for the record) and asks for an
identity-encoded answer; `UsageStripper`, run by the Tee, then takes back out of
what the client receives exactly what include_usage added, so the client gets the
stream it asked for. The upstream's own bytes, usage chunk included, are recorded.
"""

from __future__ import annotations

import json
import re

from mitmproxy import http

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# `"usage":null`, which every chunk carries once include_usage is on, with the comma
# that joins it to its neighbour (a quote inside a JSON string is escaped, so the
# pattern cannot match model text).
_USAGE_NULL = (
    re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])'),
    re.compile(rb'"usage"\s*:\s*null\s*,\s*'),
)
# Hosts that send a usage chunk whatever the client asked: nothing to add, nothing to strip.
NO_INJECTION = frozenset({"openrouter", "groq"})


class UsageStripper:
    """Removes from an SSE chat stream what `stream_options.include_usage` added: the
    usage-only chunk (`choices: []`) and the `"usage": null` member of every other
    chunk. Forwards whole events only (a partial one waits for its end, which a
    client cannot use before anyway); anything it does not recognise passes as is."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = b""

    def __call__(self, data: bytes) -> bytes:
        if not data:  # the end: whatever is left (an unterminated last event)
            out, self.buf = self.buf, b""
            return self._event(out) if out else b""
        buf = self.buf + data
        out = []
        start = 0
        for m in _EVENT_END.finditer(buf):
            out.append(self._event(buf[start : m.start()]))
            if out[-1] or not buf[start : m.start()]:
                out.append(m.group())
            start = m.end()
        self.buf = buf[start:]
        return b"".join(out)

    @staticmethod
    def _event(event: bytes) -> bytes:
        if _EMPTY_CHOICES.search(event) and _USAGE_OBJECT.search(event):
            return b""
        if b"null" in event:
            for pattern in _USAGE_NULL:
                event, n = pattern.subn(b"", event, count=1)
                if n:
                    break
        return event


def inject_usage(flow: http.HTTPFlow, provider: str, api: str) -> bytes | None:
    """Ask the upstream for a usage chunk the client did not ask for.

    Returns the client's original body (what gets recorded) when the request was
    changed, else None. Only for streamed chat/completions with a plain JSON body.
    `Accept-Encoding: identity` keeps the answer readable for the stripper.
    """
    req = flow.request
    if api not in ("chat", "completions") or provider in NO_INJECTION:
        return None
    if req.headers.get("content-encoding") or not req.raw_content:
        return None
    try:
        body = json.loads(req.raw_content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("stream") is not True:
        return None
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return None
    if (options or {}).get("include_usage"):
        return None
    original = req.raw_content
    body["stream_options"] = {**(options or {}), "include_usage": True}
    req.content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    req.headers["accept-encoding"] = "identity"
    return original


def can_strip(response: http.Response) -> bool:
    """The answer is an identity-encoded SSE stream without a fixed length."""
    headers = response.headers
    return (
        "text/event-stream" in headers.get("content-type", "").lower()
        and headers.get("content-encoding", "identity").lower() == "identity"
        and "content-length" not in headers
    )
