"""The profiler's pass over one parsed trace: price it, and say where its tokens went.

`profile(trace)` runs in the writer's worker thread, after `extract.build_trace`
and before the store. It fills `cost_usd`, `price_source`, and (when the request
could be read) `components`, `detail` and `analysis`. It never raises on odd
input; what it could not do is returned as a list of problems for the writer to
count and log.
"""

from __future__ import annotations

from typing import Any

from storage.trace import Trace

from . import pricing


def _one_hour_writes(usage_raw: Any) -> int | None:
    """Anthropic reports the 1-hour share of cache writes (billed higher) apart."""
    if not isinstance(usage_raw, dict):
        return None
    detail = usage_raw.get("cache_creation")
    if isinstance(detail, dict) and isinstance(detail.get("ephemeral_1h_input_tokens"), int):
        return detail["ephemeral_1h_input_tokens"]
    return None


def price_trace(trace: Trace) -> pricing.Price | None:
    """Set the trace's cost. A call without usage that failed is billed nothing and says
    so; one that succeeded without usage stays unpriced (None), never $0."""
    if trace.prompt_tokens is None and trace.completion_tokens is None:
        if trace.outcome != "ok":
            trace.cost_usd = 0.0
            trace.price_source = f"not billed: {trace.outcome} without usage"
        return None
    p = pricing.price(
        trace.provider,
        trace.model or trace.requested_model,
        prompt_tokens=trace.prompt_tokens,
        completion_tokens=trace.completion_tokens,
        cached_tokens=trace.cached_tokens,
        cache_write_tokens=trace.cache_write_tokens,
        reasoning_tokens=trace.reasoning_tokens,
        cache_write_1h_tokens=_one_hour_writes(trace.usage_raw),
        ts=trace.ts,
        host=trace.host,
    )
    trace.cost_usd = round(p.cost_usd, 9) if p.cost_usd is not None else None
    trace.price_source = (
        f"{p.source} ({p.model_ref})" if p.priced and p.model_ref else p.source or p.note
    )
    return p


def profile(trace: Trace) -> list[str]:
    problems: list[str] = []
    try:
        price_trace(trace)
    except ValueError as e:  # a broken LLMPROF_PRICING file: the call stays unpriced
        problems.append(f"pricing: {e}")
    return problems
