"""What ties an agent's calls into one run: harness ids and conversation fingerprints.

Resolution (the store applies it at write time, see `storage.runs`):

1. an explicit `x-llmprof-session` header;
2. the id a harness already sends: Claude Code's session inside the Anthropic
   `metadata.user_id`, Codex's `session_id` / `conversation_id` headers,
   OpenCode's `x-opencode-session` header;
3. conversation continuity: each call carries the fingerprints of its message
   list's prefixes (system prompt excluded, since agents rewrite it). A call
   whose messages extend an earlier call's, with a reply in between, joins that
   call's run; an identical message list within RETRY_WINDOW of the same
   template is a retry and joins it too;
4. otherwise a new run.

Messages are fingerprinted from a normalized form (role, text, tool calls and
results), so the same message re-serialized by an SDK (string vs blocks, extra
null fields) keeps its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from . import memo

_CLAUDE_SESSION = re.compile(r"session_([0-9a-fA-F-]{36})")
_ASSISTANT = {"assistant", "model"}
_SYSTEM = {"system", "developer"}


def harness_session(request: Any, headers: dict[str, str] | None) -> str | None:
    """The run id a known agent harness sent, prefixed with the harness's name."""
    headers = headers or {}
    if sid := headers.get("x-opencode-session"):
        return f"opencode:{sid}"
    if sid := headers.get("session_id") or headers.get("conversation_id"):
        return f"codex:{sid}"
    metadata = request.get("metadata") if isinstance(request, dict) else None
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str):
        if match := _CLAUDE_SESSION.search(user_id):  # user_<h>_account_<u>_session_<uuid>
            return f"claude-code:{match.group(1).lower()}"
        try:  # newer Claude Code: a JSON object with session_id
            value = json.loads(user_id)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("session_id"), str):
            return f"claude-code:{value['session_id']}"
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in ("tool_use", "function_call"):
            args = value.get("input", value.get("arguments"))
            return f"<call {value.get('name')} {_canonical(args)}>"
        if kind in ("tool_result", "function_call_output"):
            return f"<result {_text(value.get('content', value.get('output')))}>"
        for key in ("text", "content", "parts", "output", "functionCall", "functionResponse"):
            if key in value:
                return (
                    _text(value[key])
                    if key not in ("functionCall", "functionResponse")
                    else _canonical(value[key])
                )
    return ""


def _canonical(value: Any) -> str:
    if isinstance(value, str):  # OpenAI sends tool arguments as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _items(api: str | None, request: dict) -> list:
    if api == "gemini":
        items = request.get("contents")
    elif api == "responses":
        items = request.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
    else:
        items = request.get("messages")
    return items if isinstance(items, list) else []


class _Msg:
    """One message as the chain hashes it: its role, and role + text as bytes."""

    __slots__ = ("role", "tail")

    def __init__(self, role: str, body: str) -> None:
        self.role = role
        self.tail = role.encode() + b"\x00" + body.encode("utf-8", "replace")

    def step(self, h: bytes) -> bytes:
        return hashlib.blake2b(h + self.tail, digest_size=12).digest()


_SKIP = _Msg("", "")  # a system message: not part of the conversation
_msgs = memo.LRU(max_weight=16 << 20, max_items=200_000)  # message key -> _Msg
# the keys of a list of items -> (fingerprints, roles, last digest): a call that extends
# an earlier call's list hashes only its new messages
_lists = memo.Lists(max_weight=8 << 20, max_items=20_000)


def _msg(m: dict) -> _Msg:
    role = m.get("role") or ("assistant" if m.get("type") == "function_call" else "tool")
    if role in _SYSTEM:
        return _SKIP
    body = _text(m.get("content", m.get("parts", m)))
    for call in m.get("tool_calls") or []:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            fn = call["function"]
            body += f"<call {fn.get('name')} {_canonical(fn.get('arguments'))}>"
    if m.get("type") in ("function_call", "function_call_output"):
        body = _text(m)
    return _Msg("assistant" if role in _ASSISTANT else str(role), body.strip())


def _message(m: dict, key: bytes | None) -> _Msg:
    """`_msg`, read once per content."""
    msg = _msgs.get(key) if key is not None else None
    if msg is None:
        msg = _msg(m)
        if key is not None:
            _msgs.put(key, msg, len(key) + len(msg.tail) + memo.ENTRY_OVERHEAD)
    return msg


def fingerprints(
    api: str | None, request: Any, keys: dict | None = None
) -> tuple[list[str], list[str]]:
    """`(prefix fingerprints, roles)`: fingerprint j covers messages 1..j. `keys` are the
    memo keys attribution already made for the same request's messages (and message
    list), by id."""
    if not isinstance(request, dict):
        return [], []
    items = _items(api, request)
    known = keys.get(id(items)) if keys else None
    if known is not None and known[0] is items:  # attribution keyed this very list
        ks = list(known[1])
    else:
        ks = []
        for m in items:
            known = keys.get(id(m)) if keys else None
            ks.append(known[1] if known is not None and known[0] is m else memo.key_of(m))
    exact = None not in ks
    n, kept, done = _lists.longest(None, ks) if exact else (0, (), None)
    chain, roles, h = (list(done[0]), list(done[1]), done[2]) if done else ([], [], b"")
    marks = _lists.short_of_end(n, len(ks)) if exact else range(0)
    for i in range(n, len(ks)):
        if i in marks:
            _keep(kept, ks, n, i, chain, roles, h)
        m = items[i]
        msg = _message(m, ks[i]) if isinstance(m, dict) else _SKIP
        if msg is not _SKIP:
            h = msg.step(h)
            chain.append(h.hex())
            roles.append(msg.role)
    if exact and n < len(ks):
        _keep(kept, ks, n, len(ks), chain, roles, h)
    return chain, roles


def _keep(kept: tuple, ks: list, start: int, end: int, chain: list, roles: list, h: bytes):
    # The new keys are weighed in full: usually the unit memo's own objects, but one
    # too heavy for it would be held by this list alone.
    weight = 16 * len(chain) + sum(map(len, ks[start:end])) + 80 * (end - start)
    weight += memo.ENTRY_OVERHEAD
    _lists.keep(None, kept + tuple(ks[start:end]), (tuple(chain), tuple(roles), h), weight)


def _reply_items(api: str | None, response: Any) -> list[dict]:
    """The reply as the client will send it back in its next request's messages."""
    r = response if isinstance(response, dict) else {}
    if api == "messages":
        content = r.get("content")
        return [{"role": "assistant", "content": content}] if content else []
    if api == "responses":
        return [i for i in r.get("output") or [] if isinstance(i, dict)]
    if api == "gemini":
        cands = r.get("candidates") or []
        content = cands[0].get("content") if cands and isinstance(cands[0], dict) else None
        return [content] if isinstance(content, dict) else []
    choices = r.get("choices") or []
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    return [message] if isinstance(message, dict) else []


def reply_fingerprint(api: str | None, chain: list[str], response: Any) -> str | None:
    """The fingerprint the next request will carry if it continues from this reply:
    the request's chain extended by the reply's messages (no re-hash of the history)."""
    items = _reply_items(api, response)
    if not items:
        return None
    h, last = bytes.fromhex(chain[-1]) if chain else b"", None
    for m in items:
        msg = _message(m, memo.key_of(m))
        if msg is not _SKIP:
            h = msg.step(h)
            last = h.hex()
    return last
