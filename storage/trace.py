"""The trace record: the one type that crosses from the addon to a store.

A `Trace` is one LLM call, already parsed and normalized. Token fields follow a
single convention whatever the provider said on the wire (providers convert
exactly once, in `addon/providers/`):

- `prompt_tokens`     every input token, cache reads and cache writes included
- `cached_tokens`     input tokens served from the provider's prompt cache
- `cache_write_tokens` input tokens written to the cache (billed at a premium)
- `completion_tokens` every output token, reasoning included
- `reasoning_tokens`  the reasoning/thinking share of `completion_tokens`

Counts the provider did not report are `None`, never a made-up zero.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("ok", "http_error", "upstream_error", "client_abort")

# Columns of the `traces` table, in the order both dialects insert them. The
# heavy JSON documents (BODY_FIELDS) live in `trace_bodies`, so listings and
# summaries never read them.
SCALAR_FIELDS = (
    "uid",
    "ts",
    "provider",
    "host",
    "endpoint",
    "api",
    "model",
    "requested_model",
    "status",
    "outcome",
    "error",
    "streamed",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "usage_source",
    "cost_usd",
    "price_source",
    "latency_ms",
    "ttft_ms",
    "session_hint",
    "route",
    "route_label",
    "reclaimable_tokens",
    "reclaimable_usd",
    "reclaim_dup_usd",
    "reclaim_cache_usd",
    "conv_fp",
    "reply_fp",
)
JSON_SCALAR_FIELDS = ("components", "called_tools")
BODY_FIELDS = ("request", "response", "usage_raw", "request_headers", "detail", "analysis")


def new_uid() -> str:
    """A globally unique record id (so replaying a spool never duplicates)."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class Trace:
    """One recorded LLM call. See the module docstring for the token convention."""

    ts: float = field(default_factory=time.time)  # epoch seconds, when the call started
    uid: str = field(default_factory=new_uid)
    provider: str | None = None  # openai | anthropic | ...
    host: str | None = None
    endpoint: str | None = None  # request path without the query string
    api: str | None = None  # wire shape: chat | messages | responses | ...
    model: str | None = None  # as the provider answered, else as requested
    requested_model: str | None = None
    status: int | None = None
    outcome: str = "ok"  # one of OUTCOMES
    error: str | None = None  # provider error type/message, or the proxy's error
    streamed: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage_source: str = "none"  # provider | estimated | none
    cost_usd: float | None = None
    price_source: str | None = None
    latency_ms: float | None = None  # request start to last byte
    ttft_ms: float | None = None  # request start to the first content event (streams)
    session_hint: str | None = None  # an explicit run id sent by the client
    route: str | None = None
    route_label: str | None = None
    reclaimable_tokens: int | None = None
    reclaimable_usd: float | None = None
    reclaim_dup_usd: float | None = None  # what removing duplicated content would save
    reclaim_cache_usd: float | None = None  # what caching the stable prefix would save
    conv_fp: str | None = None  # fingerprint of the request's messages (system excluded)
    reply_fp: str | None = None  # ... of those messages followed by this call's reply
    components: dict[str, int] = field(default_factory=dict)
    called_tools: list[str] = field(default_factory=list)
    # Heavy documents, stored in trace_bodies.
    request: Any = None  # the JSON body as sent
    response: Any = None  # the JSON body; for a stream the reassembled final message
    usage_raw: Any = None  # the provider's usage object as received
    request_headers: dict[str, str] | None = None  # allowlisted, never credentials
    detail: Any = None
    analysis: Any = None
    # Not stored as such: folded by the store into the per-template tool ledger
    # (route_tools). One {tool, tokens, called, residual_usd} per tool shipped.
    tool_usage: list[dict[str, Any]] = field(default_factory=list)
    # Not stored: the prefix fingerprints (1..k messages) and roles, for run resolution.
    conv_chain: list[str] = field(default_factory=list)
    conv_roles: list[str] = field(default_factory=list)
    # Not stored: the JSON columns already encoded (storage.rows.prepare), so the
    # writer does that CPU work in its worker thread, not on the proxy's event loop.
    encoded: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        if self.total_tokens is None and (
            self.prompt_tokens is not None or self.completion_tokens is not None
        ):
            self.total_tokens = (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("encoded", None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        """Rebuild a trace from `to_dict` output (used by the spool); unknown keys are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
