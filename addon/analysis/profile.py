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

from . import conversation, findings, pricing, routes
from .attribution import attribute


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
    """Price, attribute, template and judge one trace in place; return the problems."""
    problems: list[str] = []
    price = None
    try:
        price = price_trace(trace)
    except ValueError as e:  # a broken LLMPROF_PRICING file: the call stays unpriced
        problems.append(f"pricing: {e}")
    request = trace.request if isinstance(trace.request, dict) else None
    if request is None:
        return problems
    attr = attribute(
        trace.api or "chat",
        request,
        provider=trace.provider,
        model=trace.model or trace.requested_model,
        prompt_tokens=trace.prompt_tokens,
    )
    trace.components, trace.detail = attr.components, attr.detail
    system = routes.system_text(trace.api, request)
    route = routes.route_of(trace.api, request, attr.tools, system)
    if route is not None:
        trace.route, trace.route_label = route
    trace.conv_chain, trace.conv_roles = conversation.fingerprints(trace.api, request, attr.keys)
    trace.conv_fp = trace.conv_chain[-1] if trace.conv_chain else None
    trace.reply_fp = conversation.reply_fingerprint(trace.api, trace.conv_chain, trace.response)
    if not trace.session_hint:
        trace.session_hint = conversation.harness_session(request, trace.request_headers)
    found = findings.analyze(trace, attr, price, system)
    trace.tool_usage = found.tool_usage
    if trace.cost_usd is not None:
        trace.reclaim_dup_usd = round(found.dup_usd, 9)
        trace.reclaim_cache_usd = round(found.cache_usd, 9)
        trace.reclaimable_usd = round(found.dup_usd + found.cache_usd, 9)
    trace.reclaimable_tokens = found.dup_tokens + found.cache_tokens
    trace.analysis = {
        **(trace.analysis or {}),  # what extraction noted (e.g. server-side history)
        "findings": found.findings,
        "reclaimable_tokens": trace.reclaimable_tokens,
        "reclaimable_usd": trace.reclaimable_usd,
        "attribution": {
            "method": attr.method,
            "estimated": attr.estimated,
            "reconciled": attr.reconciled,
            "local_tokens": attr.estimated_total,
        },
        "price": None
        if price is None
        else {
            "model_ref": price.model_ref,
            "parts": price.parts,
            "input_rate_per_mtok": price.input_rate_per_mtok,
            "note": price.note,
        },
        "tools_shipped": attr.tools,
    }
    return problems
