"""The accumulator the per-API walkers fill: raw token counts per component and child.

Walkers only decide *what* a piece of the request is; this module decides how it
is counted (cached tiktoken counts for text, media rules for attachments, an
explicit estimate for opaque blobs) and keeps the side products attribution
returns (tool names, long text blocks, message fingerprints).

Walkers hand each message and tool definition to `Builder.unit` (a request's
messages to `Builder.units`), which replays what walking it did before (replay.py),
so the history an agent re-sends every call is not walked, tokenized and
fingerprinted again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import tiktoken

from . import media, replay
from .tokens import cached_count

SYSTEM = "system prompt"
TOOLS = "tool schemas"
USER = "user input"
HISTORY = "history (assistant)"
THINKING = "thinking"
CALLS = "tool calls"
RESULTS = "tool results"
ATTACH = "attachments"
# Context the request only references (Responses previous_response_id, Gemini
# cachedContent): it is billed but invisible here, so it gets the unexplained rest.
SERVER = "server-side context"
UNATTRIBUTED = "unattributed"  # a reported total with nothing countable in the request
ORDER = (SYSTEM, TOOLS, USER, HISTORY, THINKING, CALLS, RESULTS, ATTACH, SERVER, UNATTRIBUTED)

BLOCK_MIN = 200  # text longer than this is kept for the duplicate finder
LOOSE_JSON_MAX = 2000  # an unknown part is counted as its JSON up to this size
_MAX_DEPTH = 32
_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{256,}")


def compact(value: Any) -> str:
    """Compact JSON, as close to what a provider renders as we can get without its template."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):
        return ""


def _strip(value: Any, depth: int = 0) -> Any:
    # cache_control markers move to the newest message on every Anthropic call;
    # dropping them keeps an unchanged message's fingerprint unchanged.
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _strip(v, depth + 1) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v, depth + 1) for v in value]
    return value


def fingerprint(message: Any) -> str:
    """A 16-hex-digit digest of a message's canonical JSON (sorted keys, no cache_control)."""
    try:
        canon = json.dumps(_strip(message), sort_keys=True, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):
        canon = repr(type(message))
    return hashlib.blake2b(canon.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def is_blob(s: str) -> bool:
    """Looks like base64 or an encrypted payload (long, no whitespace): never tokenized."""
    return len(s) >= 256 and _BLOB.fullmatch(s, 0, 256) is not None


class Builder:
    """Raw (unreconciled) counts for one request, plus the side products."""

    def __init__(self, enc: tiktoken.Encoding, fam: str, model: str | None) -> None:
        self.enc, self.fam, self.model = enc, fam, model
        self.raw: dict[str, int] = {}
        self.kids: dict[str, dict[str, int]] = {}
        self.blocks: list[tuple[str, str]] = []
        self.tools: list[str] = []
        self.hashes: list[str] = []
        self.names: dict[str, str] = {}  # tool call id -> tool name, to label results
        self.approx = False  # something was assumed, not counted
        self.server_side = False
        self.last_home: str | None = None
        self._msg: dict[str, int] | None = None
        self.keys: dict[int, tuple[Any, Any]] = {}  # id(unit) -> (unit, memo key)
        self.ctx = (enc.name, fam, model)  # what a unit's counts depend on besides itself
        self.log: dict[tuple[str, str | None], int] | None = None  # a recorder's adds

    def unit(self, walk: Callable[..., None], value: Any, *args: Any) -> None:
        """`walk(self, value, *args)` for one self-contained part of the request (a
        message, a tool definition), or a replay of what it did last time (replay.py)."""
        replay.unit(self, walk, value, args)

    def units(self, walk: Callable[..., None], values: list, *args: Any) -> None:
        """`unit` for each of `values` in order (a request's messages or tools), the
        longest list of them seen before replayed in one step."""
        replay.units(self, walk, values, args)

    def recorder(self) -> Builder:
        """An empty Builder in the same context that logs what is done to it."""
        rec = Builder(self.enc, self.fam, self.model)
        rec.names, rec.log, rec.keys = replay.Names(self.names), {}, self.keys
        return rec

    def add(self, comp: str, n: int, child: str | None = None) -> None:
        if n <= 0:
            return
        if self.log is not None:  # summed per (component, child), in first-seen order
            self.log[comp, child] = self.log.get((comp, child), 0) + n
        self.raw[comp] = self.raw.get(comp, 0) + n
        if child is not None:
            kids = self.kids.setdefault(comp, {})
            kids[child] = kids.get(child, 0) + n
        if self._msg is not None:
            self._msg[comp] = self._msg.get(comp, 0) + n

    def name_of(self, call_id: Any) -> str | None:
        """The tool name an earlier call with this id used (ids may be junk in odd input)."""
        return self.names.get(call_id) if isinstance(call_id, str) else None

    def enc_count(self, value: Any) -> int:
        """Tokens of a short string (a role, a name); 0 for anything else."""
        return cached_count(value, self.enc) if isinstance(value, str) else 0

    def text(self, comp: str, value: Any, child: str | None = None) -> None:
        """Count a text field; a non-string where text was expected goes to `loose`."""
        if isinstance(value, str):
            if value:
                if len(value) > BLOCK_MIN:
                    self.blocks.append((comp, value))
                self.add(comp, cached_count(value, self.enc), child)
        elif value is not None:
            self.loose(comp, value, child)

    def json(self, comp: str, value: Any, child: str | None = None) -> None:
        """Count structured data (tool arguments, schemas) as its compact JSON."""
        if value is None or value == {}:
            return
        self.text(comp, value if isinstance(value, str) else compact(value), child)

    def opaque(self, comp: str, value: Any, child: str | None = None) -> None:
        # Encrypted reasoning / redacted thinking: the plaintext is context, but only
        # its size is visible. base64 of ciphertext ~ 4/3 bytes, ~4 bytes a token.
        if isinstance(value, str) and value:
            self.add(comp, max(1, len(value) * 3 // 16), child)
            self.approx = True

    def media(self, kind: str, cost: media.Cost) -> None:
        self.add(ATTACH, cost.tokens, kind)
        self.approx = self.approx or not cost.exact

    def loose(self, comp: str, value: Any, child: str | None = None, depth: int = 0) -> None:
        """An unknown part: its JSON when small, else its readable string leaves."""
        if value is None or value == {} or value == []:
            return
        if depth == 0 and not isinstance(value, str):
            if isinstance(value, (int, float, bool)):
                return self.text(comp, str(value), child)
            js = compact(value) if _small(value) else ""
            if js and len(js) <= LOOSE_JSON_MAX:
                return self.text(comp, js, child)
        if depth > _MAX_DEPTH:
            return
        if isinstance(value, str):
            split = media.split_data_url(value)
            if split:
                return self.media(*media.media_cost(self.fam, self.model, *split))
            if not is_blob(value):
                self.text(comp, value, child)
        elif isinstance(value, dict):
            for v in value.values():
                self.loose(comp, v, child, depth + 1)
        elif isinstance(value, list):
            for v in value:
                self.loose(comp, v, child, depth + 1)

    def begin(self) -> None:
        """Start a message: framing overhead goes where most of its tokens went."""
        self._msg = {}

    def end(self, home: str, overhead: int) -> None:
        tally, self._msg = self._msg or {}, None
        target = max(tally, key=tally.__getitem__) if tally else home
        self.add(target, overhead)
        self.last_home = target

    def tool(self, name: Any, description: Any = None, schema: Any = None, spec: Any = None) -> str:
        """Count one tool definition under `tool schemas`, as a child named after it."""
        label = name if isinstance(name, str) and name else "tool"
        self.tools.append(label)
        if spec is not None:  # a built-in tool: its whole config is all we see
            self.json(TOOLS, spec, label)
            return label
        self.text(TOOLS, label, label)
        self.text(TOOLS, description, label)
        self.json(TOOLS, schema, label)
        return label


def _small(value: Any, budget: int = LOOSE_JSON_MAX) -> bool:
    # Bail out of serializing a huge unknown structure before paying for it.
    stack, seen = [value], 0
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if v.startswith("data:"):  # a data URL is media: walk to it, never tokenize it
                return False
            seen += len(v) + 2
        elif isinstance(v, dict):
            seen += 2 * len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            seen += len(v)
            stack.extend(v)
        else:
            seen += 4
        if seen > budget:
            return False
    return True
