"""Where the context tokens of one LLM call went.

`attribute()` walks a request body (per API shape, see walk_openai / walk_others),
counts each part with an offline tokenizer or the provider's media rules, and then
*reconciles*: when the provider reported the input total, the components are
scaled to sum to it exactly (largest-remainder rounding), so the shares come from
our tokenizer and the total from the bill. Children (one per tool under `tool
schemas`, per tool under `tool calls`/`tool results`, per kind under
`attachments`) are reconciled to their parent the same way, so the flame-graph
tree and the flat components always agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from . import media
from .collect import ORDER, SERVER, UNATTRIBUTED, Builder
from .tokens import encoding_for, exact_for
from .walk_openai import chat, responses
from .walk_others import gemini, messages

log = logging.getLogger("llmprof.attribution")

WALKERS = {"chat": chat, "responses": responses, "messages": messages, "gemini": gemini}
# Tests flip this so a walker bug fails loudly instead of degrading to a partial count.
STRICT = False


@dataclass(slots=True)
class Attribution:
    """The attribution of one request. See the module docstring."""

    components: dict[str, int] = field(default_factory=dict)  # label -> tokens
    detail: dict[str, Any] = field(default_factory=dict)  # {"name","tokens","children"} tree
    method: str = ""  # e.g. "tiktoken:o200k_base"
    estimated: bool = True  # not the provider's tokenizer, or a size/length was assumed
    reconciled: bool = False  # components sum exactly to the reported prompt_tokens
    tools: list[str] = field(default_factory=list)  # tool names shipped in the request
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (component, text > 200 chars)
    message_hashes: list[str] = field(default_factory=list)  # non-system messages, in order
    estimated_total: int = 0  # the local count before reconciliation
    # id(message, message list or tool) -> (it, its memo key or keys), for the later
    # steps of the same profile
    keys: dict[int, tuple[Any, Any]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (blocks as [component, text] pairs)."""
        return {
            "components": self.components,
            "detail": self.detail,
            "method": self.method,
            "estimated": self.estimated,
            "reconciled": self.reconciled,
            "tools": self.tools,
            "blocks": [list(b) for b in self.blocks],
            "message_hashes": self.message_hashes,
            "estimated_total": self.estimated_total,
        }


def scale(values: dict[str, int], total: int) -> dict[str, int]:
    """Scale non-negative `values` to sum exactly to `total` (largest-remainder method).

    Integer arithmetic throughout, so no float error can break the exact sum. Ties
    go to the larger value, then to the earlier key. `values` must sum to > 0.
    """
    s = sum(values.values())
    quot = {k: divmod(v * total, s) for k, v in values.items()}
    out = {k: q for k, (q, _) in quot.items()}
    short = total - sum(out.values())  # < len(values): each remainder is < 1
    keys = list(values)
    ranked = sorted(range(len(keys)), key=lambda i: (-quot[keys[i]][1], -values[keys[i]], i))
    for i in ranked[:short]:
        out[keys[i]] += 1
    return out


def _reconcile(b: Builder, total: int) -> dict[str, int]:
    s = sum(b.raw.values())
    if s == 0:
        return {SERVER if b.server_side else UNATTRIBUTED: total} if total else {}
    if b.server_side and total > s:
        # History we cannot see (previous_response_id, cachedContent) explains the gap;
        # scaling the visible parts up would blame them for it.
        return {**b.raw, SERVER: total - s}
    return scale(b.raw, total)


def _prompt_total(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value >= 0 and value == value and value != float("inf") else None


def attribute(
    api: str,
    request: Any,
    *,
    provider: str | None,
    model: str | None,
    prompt_tokens: int | None,
) -> Attribution:
    """Attribute the input tokens of one request to components (see the module docstring).

    `api` is "chat", "responses", "messages" or "gemini" (anything else is read as
    chat). `prompt_tokens` is the provider-reported input total, cache included;
    None keeps the raw local estimates. Never raises on a malformed request.
    """
    enc = encoding_for(provider, model)
    b = Builder(enc, media.family(provider, api), model)
    if isinstance(request, dict):
        try:
            WALKERS.get(api, chat)(b, request)
        except Exception:  # a shape we did not foresee must not lose the record
            if STRICT:
                raise
            log.exception("attribution failed for a %s request; counts are partial", api)
            b.approx = True
    total = _prompt_total(prompt_tokens)
    final = dict(b.raw) if total is None else _reconcile(b, total)
    comps = {k: final[k] for k in sorted(final, key=_rank) if final[k] > 0}
    tree = []
    for comp, n in comps.items():
        kids = {k: v for k, v in b.kids.get(comp, {}).items() if v > 0}
        kids = scale(kids, n) if kids else {}
        children = [{"name": k, "tokens": v, "children": []} for k, v in kids.items() if v > 0]
        tree.append({"name": comp, "tokens": n, "children": children})
    return Attribution(
        components=comps,
        detail={"name": "context", "tokens": sum(comps.values()), "children": tree},
        method=f"tiktoken:{enc.name}",
        estimated=b.approx or not exact_for(provider, model),
        reconciled=total is not None,
        tools=b.tools,
        blocks=b.blocks,
        message_hashes=b.hashes,
        estimated_total=sum(b.raw.values()),
        keys=b.keys,
    )


def _rank(comp: str) -> int:
    return ORDER.index(comp) if comp in ORDER else len(ORDER)
