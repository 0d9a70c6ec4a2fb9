"""The dollar cost of one LLM call, priced offline.

Rates come from the user's override file (env `LLMPROF_PRICING`, USD per million
tokens), else from genai-prices' bundled snapshot; nothing is ever downloaded. An
unknown model costs `None`, never a silent $0. `_split` is the one place llmprof's
token convention (storage/trace.py: prompt includes cache reads and writes,
completion includes reasoning) becomes disjoint billed buckets.

genai-prices' `calc_price` takes ~90 µs per call (Decimal maths, unit registry), so
we take its resolved rates (`ModelInfo.get_prices`: price history, time-of-day
prices, tiers) and apply its rules in floats: an unpriced bucket falls back to the
coarser price (1h write -> write -> input, read -> input), and a tier applies to all
tokens once the *total* input exceeds its start. tests/test_pricing.py checks this
against `calc_price`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import version
from typing import Any, NamedTuple

from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

OVERRIDE_ENV = "LLMPROF_PRICING"
LIBRARY_SOURCE = f"genai-prices {version('genai-prices')}"

# llmprof provider names that are not already genai-prices ids (those pass through).
_PROVIDER_IDS = {"gemini": "google", "vertex": "google", "xai": "x-ai", "bedrock": "aws"}
_ANNOTATION = re.compile(r"\s*\[[^\]]*\]$")  # claude-sonnet-4-6[1m] is claude-sonnet-4-6
_OVERRIDE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
# Our rate names -> genai-prices price keys (USD per million tokens). Reasoning has its
# own price only for sonar-deep-research; elsewhere it is billed as output.
_LIB_KEYS = {n: f"{n}_mtok" for n in ("input", "cache_read", "cache_write", "cache_write_1h")}
_LIB_KEYS |= {"output": "output_mtok", "reasoning": "output_reasoning_mtok"}


@dataclass(frozen=True, slots=True)
class Price:
    cost_usd: float | None = None  # None = not priced; never 0 for an unknown model
    priced: bool = False
    source: str | None = None  # "genai-prices 0.2.3" | "override:/path/file.json"
    model_ref: str | None = None  # the entry that matched: "anthropic:claude-sonnet-4-5"
    parts: dict[str, float] = field(default_factory=dict)  # dollars per billed bucket
    input_rate_per_mtok: float | None = None  # this call's uncached input rate (tier applied)
    note: str | None = None  # why not priced, or which inconsistent count was clamped


class _Usage(NamedTuple):
    uncached: int
    cache_read: int
    write_5m: int
    write_1h: int
    output: int  # all output, reasoning included
    reasoning: int  # the share of `output` that is reasoning
    total_in: int  # what long-context tiers are measured against


def _split(prompt, cached, write, write_1h, completion, reasoning) -> tuple[_Usage, str | None]:
    """llmprof counts -> disjoint billed buckets. The only place the convention is mapped."""
    prompt, completion = max(prompt or 0, 0), max(completion or 0, 0)
    cached, write = max(cached or 0, 0), max(write or 0, 0)
    write_1h = min(max(write_1h or 0, 0), write)  # the 1h share of the writes
    reasoning = min(max(reasoning or 0, 0), completion)  # already inside completion
    uncached = prompt - cached - write
    note = None
    if uncached < 0:  # a parser that reported input *excluding* cache; bill what we know
        note = f"prompt_tokens {prompt} < cached {cached} + cache_write {write}; uncached set to 0"
        uncached = 0
    total_in = uncached + cached + write
    usage = _Usage(uncached, cached, write - write_1h, write_1h, completion, reasoning, total_in)
    return usage, note


def _float_rate(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, TieredPrices):
        tiers = sorted(((t.start, float(t.price)) for t in value.tiers), reverse=True)
        return float(value.base), tuple(tiers)
    return float(value)


_RATES: dict[int, tuple[ModelPrice, dict[str, Any]]] = {}


def _library_rates(mp: ModelPrice) -> dict[str, Any]:
    hit = _RATES.get(id(mp))
    if hit is None or hit[0] is not mp:  # keep mp alive so its id is never reused
        rates = {name: _float_rate(getattr(mp, key)) for name, key in _LIB_KEYS.items()}
        per_k = mp.requests_kcount  # a per-request fee (Perplexity), priced per 1,000 calls
        rates["request"] = float(per_k) / 1000 if per_k is not None else None
        hit = _RATES[id(mp)] = (mp, rates)
    return hit[1]


def _cost(rates: dict[str, Any], u: _Usage, source: str, ref: str, note: str | None) -> Price:
    def at(name: str, fallback: float) -> float:
        r = rates.get(name)  # float, None (not priced) or tiers: (base, ((start, rate), ...))
        if isinstance(r, tuple):  # highest start first; the tier applies to every token
            r = next((rate for start, rate in r[1] if u.total_in > start), r[0])
        return fallback if r is None else r

    inp = at("input", 0.0)
    out = at("output", 0.0)
    write = at("cache_write", inp)
    parts = {
        "uncached_input": u.uncached * inp,
        "cache_read": u.cache_read * at("cache_read", inp),
        "cache_write": u.write_5m * write + u.write_1h * at("cache_write_1h", write),
        "output": (u.output - u.reasoning) * out + u.reasoning * at("reasoning", out),
    }
    parts = {k: round(v / 1e6, 9) for k, v in parts.items()}
    if rates.get("request"):
        parts["request"] = round(rates["request"], 9)
    cost = round(sum(parts.values()), 9)
    return Price(cost, True, source, ref, parts, inp, note)


@lru_cache(maxsize=4096)
def _lookup(provider: str | None, host: str | None, model: str):
    """The genai-prices model for a call, trying the provider hint first, then the model alone."""
    snap = data_snapshot.get_snapshot()
    hints: list[tuple[str | None, str | None]] = []
    # llmprof names an unknown host after itself; genai-prices knows providers' API URLs.
    provider_is_host = bool(provider) and ("." in provider or ":" in provider)
    if provider and not provider_is_host:
        hints.append((_PROVIDER_IDS.get(provider, provider), None))
    if hostish := host or (provider if provider_is_host else None):
        hints.append((None, "https://" + hostish))
    hints.append((None, None))
    # "anthropic/claude-sonnet-4.5" (routers), "models/gemini-2.5-pro" (Gemini API)
    names = [model, model.rsplit("/", 1)[1]] if "/" in model else [model]
    for name in names:
        for provider_id, url in hints:
            try:
                prov, info = snap.find_provider_model(name, None, provider_id, url)
            except LookupError:
                continue
            return info, f"{prov.id}:{info.id}"
    return None


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError as e:
        raise ValueError(f"{OVERRIDE_ENV} file {path}: cannot read it ({e.strerror})") from None


def load_overrides(path: str) -> dict[str, dict[str, float]]:
    """Parse and check an override file (call at startup); ValueError says what is wrong."""
    return _load_overrides(path, _mtime(path))


@lru_cache(maxsize=8)
def _load_overrides(path: str, mtime_ns: int) -> dict[str, dict[str, float]]:
    def bad(what: str) -> ValueError:
        return ValueError(f"{OVERRIDE_ENV} file {path}: {what}")

    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise bad(f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise bad(f"cannot read it ({e})") from None
    if not isinstance(raw, dict):
        raise bad('expected an object {"model": {"input": ..., "output": ...}}')
    table: dict[str, dict[str, float]] = {}
    for key, entry in raw.items():
        if not key.strip() or not isinstance(entry, dict):
            raise bad(f"model {key!r}: expected a non-empty name and an object of prices")
        if unknown := sorted(set(entry) - set(_OVERRIDE_FIELDS)):
            raise bad(f"model {key!r}: unknown field {unknown[0]!r} (allowed: {_OVERRIDE_FIELDS})")
        for name, value in entry.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < 0:
                raise bad(f"model {key!r}: {name!r} must be a number >= 0 (USD/M), not {value!r}")
        if "input" not in entry or "output" not in entry:
            raise bad(f"model {key!r}: 'input' and 'output' are required")
        rates = {k: float(v) for k, v in entry.items()}
        rates.setdefault("cache_read", rates["input"])  # unknown discount: bill as input
        rates.setdefault("cache_write", rates["input"])
        table[key.strip().lower()] = rates
    return table


@lru_cache(maxsize=4096)
def _override_for(path: str, mtime_ns: int, model: str) -> tuple[str, dict[str, float]] | None:
    table = _load_overrides(path, mtime_ns)
    if model in table:
        return model, table[model]
    prefixes = [k for k in table if model.startswith(k)]
    return (key := max(prefixes, key=len), table[key]) if prefixes else None


def price(
    provider: str | None,
    model: str | None,
    *,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int | None,
    cache_write_tokens: int | None,
    reasoning_tokens: int | None,
    cache_write_1h_tokens: int | None = None,
    ts: float | None = None,
    host: str | None = None,
) -> Price:
    """Price one call from llmprof-convention token counts (see storage/trace.py).

    `provider` is llmprof's name (openai, anthropic, ... or a host name) and `host` the
    upstream host; both only help pick the price entry. `cache_write_1h_tokens` is the
    1-hour share of `cache_write_tokens` (the rest is billed as 5-minute writes). `ts`
    (epoch seconds, default now) selects historic and time-of-day prices.

    Returns `Price(cost_usd=None, priced=False)` when there is no usage at all or the
    model has no price; overrides (env LLMPROF_PRICING) win over genai-prices. Raises
    ValueError when the override file is unreadable or malformed.
    """
    if prompt_tokens is None and completion_tokens is None:
        return Price()
    name = _ANNOTATION.sub("", (model or "").strip()).lower()
    if not name:
        return Price(note="no model name")
    counts = (prompt_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens)
    usage, note = _split(*counts, completion_tokens, reasoning_tokens)
    # Re-checked per call (one stat) so an edited file applies without a restart.
    if path := os.environ.get(OVERRIDE_ENV):
        if hit := _override_for(path, _mtime(path), name):
            return _cost(hit[1], usage, f"override:{path}", hit[0], note)
    found = _lookup((provider or "").strip().lower() or None, (host or "").lower() or None, name)
    if found is None:
        return Price(note=f"no price for model {name!r}")
    info, ref = found
    when = datetime.fromtimestamp(ts, UTC) if ts is not None else datetime.now(UTC)
    rates = _library_rates(info.get_prices(when))
    if rates["input"] is None and rates["output"] is None:  # priced per page/second, not token
        return Price(model_ref=ref, note=f"{ref} has no token prices")
    return _cost(rates, usage, LIBRARY_SOURCE, ref, note)
