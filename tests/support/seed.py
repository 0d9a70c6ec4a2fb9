"""Known traces for the dashboard and CLI tests, written with `record_many`.

Seven calls over two days (`day0` is the epoch of "today" 00:00 UTC):

  id run        model              tokens in/out  cost      notes
  1  run-alpha  gpt-4o-mini        1,200 / 150    0.00027   yesterday 09:00
  2  run-alpha  gpt-4o-mini        2,600 / 220    0.000372  yesterday 09:01
  3  run-alpha  gpt-4o-mini        4,100 / 310    0.000556  today 00:01
  4  (own)      claude-sonnet-4-5  10,000 / 500   0.0228    today 00:02, the flame graph call
  5  (own)      gpt-4o             - / -          0.0       today 00:03, HTTP 429
  6  run-beta   gpt-4o             3,000 / 100    0.0085    today 00:04
  7  run-beta   claude-sonnet-4-5  5,000 / 200    0.0165    today 00:05, uncached prefix

Totals: 7 calls, 27,380 tokens, $0.048998; reclaimable $0.009171 (18.7 %):
caching $0.0081 (call 7), duplicates $0.001071 (call 4).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import storage
from storage.trace import Trace

AGENT = "You are a coding agent. +3 tools"
REVIEW = "You review pull requests. +4 tools"
XSS = '<img src=x onerror="window.__xss=1">'


def tree(components: dict[str, int], children: dict[str, dict[str, int]] | None = None) -> dict:
    kids = children or {}
    return {
        "name": "context",
        "tokens": sum(components.values()),
        "children": [
            {
                "name": name,
                "tokens": n,
                "children": [
                    {"name": k, "tokens": v, "children": []} for k, v in kids.get(name, {}).items()
                ],
            }
            for name, n in components.items()
        ],
    }


def analysis(parts: dict[str, float], findings: list[dict[str, Any]], tools: list[str]) -> dict:
    return {
        "findings": findings,
        "reclaimable_tokens": sum(f["reclaimable_tokens"] for f in findings),
        "reclaimable_usd": round(sum(f["save_usd"] for f in findings), 9),
        "attribution": {"method": "tiktoken:o200k_base", "estimated": False, "reconciled": True},
        "price": {"model_ref": "test", "parts": parts, "input_rate_per_mtok": 0, "note": None},
        "tools_shipped": tools,
    }


def finding(severity: str, title: str, body: str, tokens: int = 0, usd: float = 0.0) -> dict:
    return {
        "severity": severity,
        "title": title,
        "body": body,
        "reclaimable_tokens": tokens,
        "save_usd": usd,
    }


LEAN = [finding("ok", "Lean context", "Nothing to cut on this call.")]
AGENT_TOOLS = {"read_file": 200, "edit_file": 120, "run_tests": 80}


def _agent(ts: float, uid: str, prompt: int, out: int, cached: int, cost: float, comps) -> Trace:
    return Trace(
        ts=ts,
        uid=uid,
        provider="openai",
        host="api.openai.com",
        endpoint="/v1/chat/completions",
        api="chat",
        model="gpt-4o-mini",
        requested_model="gpt-4o-mini",
        status=200,
        streamed=True,
        prompt_tokens=prompt,
        completion_tokens=out,
        cached_tokens=cached,
        cache_write_tokens=0,
        usage_source="provider",
        cost_usd=cost,
        price_source="genai-prices test (openai:gpt-4o-mini)",
        latency_ms=812.4,
        ttft_ms=301.2,
        session_hint="run-alpha",
        route="r-agent",
        route_label=AGENT,
        components=comps,
        request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fix it"}]},
        response={"choices": [{"message": {"role": "assistant", "content": "done"}}]},
        detail=tree(comps, {"tool schemas": AGENT_TOOLS}),
        analysis=analysis(
            {"uncached_input": round(cost * 0.8, 9), "output": round(cost * 0.2, 9)},
            LEAN,
            list(AGENT_TOOLS),
        ),
    )


def traces(day0: float) -> list[Trace]:
    """The seven known calls (see the module docstring)."""
    yday = day0 - 86400
    base = {"system prompt": 500, "tool schemas": 400, "user input": 300}
    t2 = {**base, "history (assistant)": 600, "tool results": 800}
    t3 = {**base, "history (assistant)": 1400, "tool results": 1500}
    big = {
        "system prompt": 2500,
        "tool schemas": 4000,
        "user input": 300,
        "history (assistant)": 2000,
        "tool results": 1200,
    }
    big_kids = {
        "tool schemas": {"read_file": 1500, "write_file": 1200, "grep": 800, "bash": 500},
        "tool results": {"read_file": 1000, "grep": 200},
    }
    review_req = {
        "model": "claude-sonnet-4-5",
        "system": "You review pull requests.",
        "messages": [{"role": "user", "content": "Review PR #42"}],
        "tools": [{"name": n} for n in ("read_file", "write_file", "grep", "bash")],
    }
    return [
        _agent(yday + 9 * 3600, "a" * 32, 1200, 150, 0, 0.00027, base),
        _agent(yday + 9 * 3600 + 60, "b" * 32, 2600, 220, 1024, 0.000372, t2),
        _agent(day0 + 60, "c" * 32, 4100, 310, 2048, 0.000556, t3),
        Trace(
            ts=day0 + 120,
            uid="d" * 32,
            provider="anthropic",
            host="api.anthropic.com",
            endpoint="/v1/messages",
            api="messages",
            model="claude-sonnet-4-5",
            requested_model="claude-sonnet-4-5",
            status=200,
            streamed=True,
            prompt_tokens=10000,
            completion_tokens=500,
            cached_tokens=6000,
            cache_write_tokens=2000,
            reasoning_tokens=120,
            usage_source="provider",
            cost_usd=0.0228,
            price_source="genai-prices test (anthropic:claude-sonnet-4-5)",
            latency_ms=2143.7,
            ttft_ms=412.5,
            route="r-review",
            route_label=REVIEW,
            reclaimable_tokens=700,
            reclaimable_usd=0.001071,
            reclaim_dup_usd=0.001071,
            components=big,
            called_tools=["read_file"],
            request=review_req,
            response={
                "id": "msg_42",
                "role": "assistant",
                "content": [{"type": "text", "text": f"LGTM with two nits. {XSS}"}],
                "stop_reason": "end_turn",
            },
            usage_raw={"input_tokens": 2000, "cache_read_input_tokens": 6000},
            request_headers={"content-type": "application/json"},
            detail=tree(big, big_kids),
            analysis=analysis(
                {
                    "uncached_input": 0.006,
                    "cache_read": 0.0018,
                    "cache_write": 0.0075,
                    "output": 0.0075,
                },
                [
                    finding(
                        "warn",
                        "Duplicated content",
                        "1 block(s) of 200+ characters appear more than once; the extra "
                        "copies cost 700 tokens on this call.",
                        700,
                        0.001071,
                    ),
                    finding(
                        "tip",
                        "Tool schemas dominate the context",
                        "4 tool schemas take 40% of the input. Ship only the tools this "
                        "step can use.",
                    ),
                ],
                ["read_file", "write_file", "grep", "bash"],
            ),
        ),
        Trace(
            ts=day0 + 180,
            uid="e" * 32,
            provider="openai",
            host="api.openai.com",
            endpoint="/v1/chat/completions",
            api="chat",
            model="gpt-4o",
            requested_model="gpt-4o",
            status=429,
            outcome="http_error",
            error="rate_limit_exceeded: Rate limit reached",
            cost_usd=0.0,
            price_source="not billed: http_error without usage",
            latency_ms=95.2,
            request={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        ),
        Trace(
            ts=day0 + 240,
            uid="f" * 32,
            provider="openai",
            host="api.openai.com",
            endpoint="/v1/chat/completions",
            api="chat",
            model="gpt-4o",
            requested_model="gpt-4o",
            status=200,
            prompt_tokens=3000,
            completion_tokens=100,
            cached_tokens=0,
            usage_source="provider",
            cost_usd=0.0085,
            latency_ms=1320.0,
            session_hint="run-beta",
            route="r-agent",
            route_label=AGENT,
            components={"system prompt": 1000, "user input": 2000},
            detail=tree({"system prompt": 1000, "user input": 2000}),
            analysis=analysis({"uncached_input": 0.0075, "output": 0.001}, LEAN, []),
        ),
        Trace(
            ts=day0 + 300,
            uid="0" * 32,
            provider="anthropic",
            host="api.anthropic.com",
            endpoint="/v1/messages",
            api="messages",
            model="claude-sonnet-4-5",
            requested_model="claude-sonnet-4-5",
            status=200,
            prompt_tokens=5000,
            completion_tokens=200,
            cached_tokens=0,
            cache_write_tokens=0,
            usage_source="provider",
            cost_usd=0.0165,
            latency_ms=1800.0,
            session_hint="run-beta",
            route="r-review",
            route_label=REVIEW,
            reclaimable_tokens=2700,
            reclaimable_usd=0.0081,
            reclaim_cache_usd=0.0081,
            components={"system prompt": 1200, "tool schemas": 1800, "user input": 2000},
            detail=tree({"system prompt": 1200, "tool schemas": 1800, "user input": 2000}),
            analysis=analysis(
                {"uncached_input": 0.0135, "output": 0.003},
                [
                    finding(
                        "warn",
                        "Stable prefix sent without caching",
                        "The system prompt and tool schemas (3,000 tokens) were sent 2 times.",
                        2700,
                        0.0081,
                    )
                ],
                [],
            ),
        ),
    ]


async def seed_async(url: str, day0: float) -> list[int]:
    store = storage.make_store(url)
    await store.open()
    try:
        return await store.record_many(traces(day0))
    finally:
        await store.close()


def run_async(make_coro):
    """Run a coroutine to completion from sync code, even where a loop is already running
    (Playwright's sync API runs one): in a thread of its own, with a fresh loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


def seed(url: str, day0: float) -> list[int]:
    """Create the database at `url` and write the known traces; return their ids."""
    return run_async(lambda: seed_async(url, day0))
