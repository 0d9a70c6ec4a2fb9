"""Per-call waste findings and the dollars they would reclaim.

Every finding is `{severity: warn|tip|ok, title, body, reclaimable_tokens,
save_usd}`. Savings are priced at the call's own rates, and capped so a call's
savings never exceed what its input cost:

- duplicated content: paragraphs of 200+ characters sent more than once; every
  extra copy is reclaimable at the call's effective input rate;
- an uncached stable prefix (system prompt + tool schemas >= 1024 tokens) sent
  again: for Anthropic, whose caching is opt-in (`cache_control`), the saving is
  full price minus the cache-read price on the prefix; providers that cache
  automatically get the reason it did not hit instead of a dollar claim;
- advisories: tool schemas >= 35% of the context, history + tool results >= 40%,
  a system prompt >= 1500 tokens; and an `ok` "lean" finding when nothing fired.

Tools shipped but never called are judged across calls, by the store: each call
contributes per-tool `tool_usage` rows whose `residual_usd` is the schema's cost
net of any caching saving already claimed on it, so sources never double count.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from storage.trace import Trace

from . import memo, pricing
from .tokens import cached_count, encoding_for

DUP_MIN_CHARS = 200
PREFIX_MIN_TOKENS = 1024
TOOLS_SHARE, HISTORY_SHARE, SYSTEM_TOKENS = 0.35, 0.40, 1500
OPT_IN_CACHING = {"anthropic"}  # providers where caching needs cache_control


class _Seen:
    """Prefixes this proxy has sent before (bounded, thread-safe)."""

    def __init__(self, size: int = 20_000) -> None:
        self.size, self.lock, self.items = size, threading.Lock(), OrderedDict()

    def visit(self, key: str) -> int:
        with self.lock:
            n = self.items.pop(key, 0)
            self.items[key] = n + 1
            while len(self.items) > self.size:
                self.items.popitem(last=False)
            return n


SEEN_EXACT, SEEN_ROUTE = _Seen(), _Seen()


@dataclass(slots=True)
class Findings:
    findings: list[dict[str, Any]] = field(default_factory=list)
    dup_tokens: int = 0
    dup_usd: float = 0.0
    cache_tokens: int = 0
    cache_usd: float = 0.0
    tool_usage: list[dict[str, Any]] = field(default_factory=list)

    def add(self, severity, title, body, tokens=0, usd=0.0):
        self.findings.append(
            {
                "severity": severity,
                "title": title,
                "body": body,
                "reclaimable_tokens": int(tokens),
                "save_usd": round(usd, 9),
            }
        )


# Tool schemas repeat boilerplate descriptions by design; duplicates that cost
# money are pasted documents, re-read files and repeated tool output.
DUP_COMPONENTS = {
    "system prompt",
    "user input",
    "history (assistant)",
    "tool results",
    "tool calls",
}


# block text -> its long paragraphs; and a list of blocks -> (paragraph counts, the
# paragraphs seen twice or more). Replayed history hands back the very block objects
# it was first seen with, so a call extending an earlier one's blocks finds that
# list's counts and splits only its new blocks.
_PARAS = memo.LRU(max_weight=8 << 20, max_items=100_000)
_DUPS = memo.Lists(max_weight=8 << 20, max_items=20_000)


def _paragraphs(text: str) -> tuple[str, ...]:
    paras = _PARAS.get(text)
    if paras is None:
        paras = tuple(p for p in map(str.strip, text.split("\n\n")) if len(p) >= DUP_MIN_CHARS)
        _PARAS.put(text, paras, len(text) + memo.ENTRY_OVERHEAD)
    return paras


def _duplicates(blocks: list[tuple[str, str]]) -> dict[str, int]:
    """Paragraphs sent more than once in these blocks, and how many times."""
    n, kept, found = _DUPS.longest(None, blocks)
    seen, dups = (dict(found[0]), dict(found[1])) if found else ({}, {})
    for component, text in blocks[n:]:
        if component in DUP_COMPONENTS:
            for para in _paragraphs(text):
                times = seen[para] = seen.get(para, 0) + 1
                if times > 1:
                    dups[para] = times
    if n < len(blocks):
        weight = 64 * len(seen) + memo.ENTRY_OVERHEAD
        _DUPS.keep(None, kept + tuple(blocks[n:]), (seen, dups), weight)
    return dict(dups)  # the stored one stays as it is


# (encoding, paragraph) -> tokens: a re-read file stays duplicated call after call,
# and its paragraphs come back as the same objects (hashed once), unlike a token
# cache lookup, which hashes the whole text every time.
_TOKENS = memo.LRU(max_weight=4 << 20, max_items=20_000)


def _tokens(para: str, enc) -> int:
    n = _TOKENS.get((enc.name, para))
    if n is None:
        n = cached_count(para, enc)
        _TOKENS.put((enc.name, para), n, len(para) + memo.ENTRY_OVERHEAD)
    return n


def _children(detail: dict, component: str) -> dict[str, int]:
    for child in detail.get("children", []):
        if child.get("name") == component:
            return {c["name"]: c["tokens"] for c in child.get("children", [])}
    return {}


_PREFIXES = memo.LRU(max_weight=4 << 20, max_items=20_000)  # exact inputs -> key


def _prefix_key(request: dict, api: str | None, system: str) -> str:
    """The stable prefix's identity (memoized: re-serializing the tool schemas with
    sorted keys on every call of a template costs more than the lookup)."""
    raw = memo.key_of(request.get("tools"))
    exact = (api, system, raw) if raw is not None else None
    found = _PREFIXES.get(exact) if exact is not None else None
    if found is None:
        tools = json.dumps(request.get("tools"), sort_keys=True, default=str)
        found = hashlib.blake2b(
            f"{api}\x00{system}\x00{tools}".encode("utf-8", "replace"), digest_size=12
        ).hexdigest()
        if exact is not None:
            _PREFIXES.put(exact, found, len(system) + len(raw) + memo.ENTRY_OVERHEAD)
    return found


def analyze(trace: Trace, attr, price: pricing.Price | None, system: str) -> Findings:
    """Findings for one priced, attributed call (see the module docstring)."""
    out = Findings()
    comps, prompt = trace.components or {}, trace.prompt_tokens or 0
    parts = price.parts if price and price.priced else {}
    input_cost = sum(parts.get(k, 0.0) for k in ("uncached_input", "cache_read", "cache_write"))
    eff_rate = input_cost / prompt if prompt else 0.0  # $ per token, caching included
    request = trace.request if isinstance(trace.request, dict) else {}

    # 1. caching of the stable prefix
    prefix = comps.get("system prompt", 0) + comps.get("tool schemas", 0)
    cached, written = trace.cached_tokens or 0, trace.cache_write_tokens or 0
    claim_rate = 0.0
    if prefix >= PREFIX_MIN_TOKENS and request:
        exact = SEEN_EXACT.visit(_prefix_key(request, trace.api, system))
        same_route = SEEN_ROUTE.visit(trace.route or "") if trace.route else 0
        if cached >= prefix * 0.5:
            out.add(
                "ok",
                "Prompt caching is working",
                f"{cached:,} of {prompt:,} input tokens ({cached / prompt:.0%}) came from "
                "the cache.",
            )
        elif written >= prefix * 0.5:
            out.add(
                "ok",
                "Prefix written to the cache",
                f"{written:,} tokens were written to the cache; calls that reuse this "
                "prefix within the cache lifetime read it at a fraction of the price.",
            )
        elif trace.provider in OPT_IN_CACHING and exact and price and price.priced:
            read_rate = _read_rate(trace, price)
            claim_rate = max(eff_rate - read_rate, 0.0)
            out.cache_tokens, out.cache_usd = prefix, prefix * claim_rate
            out.add(
                "warn",
                "Stable prefix sent without caching",
                f"The system prompt and tool schemas ({prefix:,} tokens) were sent "
                f"{exact + 1} times by this proxy and never cached. Mark the last tool "
                "or system block with cache_control so repeats are read from the cache.",
                prefix,
                out.cache_usd,
            )
        elif exact:
            out.add(
                "tip",
                "Identical prefix not served from the cache",
                f"This {prefix:,}-token prefix was sent before but nothing was read from "
                "the cache: calls too far apart (caches expire after minutes), a "
                "different prompt_cache_key or region, or a request shape that varies "
                "ahead of the prefix.",
            )
        elif same_route:
            out.add(
                "tip",
                "Prefix changes between calls",
                "Calls of this template differ inside the system prompt or tools "
                "(dates, ids, paths), so the provider cannot reuse its cache. Move "
                "volatile text after the stable part.",
            )

    # 2. tools: per-tool cost net of the caching claim, for the across-call judgement
    called = set(trace.called_tools) | set(_children(trace.detail or {}, "tool calls"))
    for name, tokens in _children(trace.detail or {}, "tool schemas").items():
        out.tool_usage.append(
            {
                "tool": name,
                "tokens": tokens,
                "called": name in called,
                "residual_usd": round(tokens * max(eff_rate - claim_rate, 0), 12),
            }
        )
    reserved = out.cache_usd + sum(t["residual_usd"] for t in out.tool_usage)

    # 3. duplicated content
    dups = _duplicates(attr.blocks) if attr else {}
    if dups:
        enc = encoding_for(trace.provider, trace.model)
        scale = prompt / attr.estimated_total if attr and attr.estimated_total and prompt else 1
        raw = sum((n - 1) * _tokens(p, enc) for p, n in dups.items())
        out.dup_tokens = min(int(raw * scale), prompt)
        out.dup_usd = max(min(out.dup_tokens * eff_rate, input_cost - reserved), 0.0)
        out.add(
            "warn",
            "Duplicated content",
            f"{len(dups)} block(s) of 200+ characters appear more than once; the extra "
            f"copies cost {out.dup_tokens:,} tokens on this call.",
            out.dup_tokens,
            out.dup_usd,
        )

    # 4. advisories
    total = sum(comps.values()) or 1
    share = comps.get("tool schemas", 0) / total
    if share >= TOOLS_SHARE:
        out.add(
            "tip",
            "Tool schemas dominate the context",
            f"{len(_children(trace.detail or {}, 'tool schemas'))} tool schemas take "
            f"{share:.0%} of the input. Ship only the tools this step can use.",
        )
    history = (comps.get("history (assistant)", 0) + comps.get("tool results", 0)) / total
    if history >= HISTORY_SHARE:
        out.add(
            "tip",
            "History and tool results dominate",
            f"Earlier turns and tool output take {history:.0%} of the input. Summarize or "
            "truncate old turns and large tool results.",
        )
    if comps.get("system prompt", 0) >= SYSTEM_TOKENS:
        out.add(
            "tip",
            "Long system prompt",
            f"The system prompt is {comps['system prompt']:,} tokens; every call pays for it.",
        )
    if not any(f["severity"] != "ok" for f in out.findings):
        out.add("ok", "Lean context", "Nothing to cut on this call.")
    return out


def _read_rate(trace: Trace, price: pricing.Price) -> float:
    """This call's cache-read price per token (at its own long-context tier)."""
    prompt = trace.prompt_tokens or 1
    as_read = pricing.price(
        trace.provider,
        trace.model or trace.requested_model,
        prompt_tokens=prompt,
        cached_tokens=prompt,
        completion_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        ts=trace.ts,
        host=trace.host,
    )
    return (as_read.cost_usd or 0.0) / prompt if as_read.priced else price.input_rate_per_mtok / 1e6
