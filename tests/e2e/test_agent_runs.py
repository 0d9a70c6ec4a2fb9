"""Runs end to end: three interleaved 8-turn agent runs through TWO proxies writing
one database — one with an explicit header, one shaped like Claude Code, one plain
(continuity only) — are exactly three runs with turns 1..8."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import openai

import storage
from tests.support.clients import API_KEY, SDK_HTTPX

ADDON = Path(__file__).resolve().parents[2] / "addon" / "llmprof.py"
CLAUDE_USER = (
    "user_" + "b" * 64 + "_account_0f0f0f0f-1111-2222-3333-444444444444"
    "_session_9e9e9e9e-8888-7777-6666-555555555555"
)


def sdk_http(proxy):
    import ssl

    ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
    return SDK_HTTPX.Client(proxy=proxy.proxy_url, verify=ctx)


def test_interleaved_runs_through_two_proxies(db_url, proxy_factory, upstream, tmp_path):
    env = {"LLMPROF_HOME": str(tmp_path / "home"), "LLMPROF_DB_URL": db_url}
    proxies = [
        proxy_factory([ADDON], env=env, extra_args=["--set", "llmprof_flush_ms=20"])
        for _ in range(2)
    ]
    oai = [openai.OpenAI(api_key=API_KEY, max_retries=0, http_client=sdk_http(p)) for p in proxies]
    ant = [
        anthropic.Anthropic(api_key=API_KEY, max_retries=0, http_client=sdk_http(p))
        for p in proxies
    ]
    header_msgs, claude_msgs = [], []
    plain_msgs = [{"role": "system", "content": "You are a planner."}]
    try:
        for turn in range(1, 9):
            other = turn % 2  # the header and Claude Code runs alternate between the proxies
            header_msgs.append({"role": "user", "content": f"header run, step {turn}"})
            r = oai[other].chat.completions.create(
                model="gpt-4o-mini",
                messages=header_msgs,
                extra_headers={"x-llmprof-session": "team-run-7"},
            )
            header_msgs.append({"role": "assistant", "content": r.choices[0].message.content})

            claude_msgs.append({"role": "user", "content": f"claude step {turn}"})
            m = ant[1 - other].messages.create(
                model="claude-sonnet-4-5",
                max_tokens=64,
                system="You are Claude Code.",
                metadata={"user_id": CLAUDE_USER},
                messages=claude_msgs,
            )
            claude_msgs.append({"role": "assistant", "content": m.content[0].text})

            plain_msgs.append({"role": "user", "content": f"plain step {turn}"})
            r = oai[0].chat.completions.create(model="gpt-4o-mini", messages=plain_msgs)
            plain_msgs.append({"role": "assistant", "content": r.choices[0].message.content})
    finally:
        for c in (*oai, *ant):
            c.close()
    assert [p.stop() for p in proxies] == [0, 0]

    async def runs():
        async with storage.make_store(db_url, readonly=True) as s:
            listed = await s.sessions(limit=50, min_turns=1)
            return listed, [await s.session(r["session_id"]) for r in listed]

    listed, detail = asyncio.run(runs())
    assert len(listed) == 3 and sorted(r["turns"] for r in listed) == [8, 8, 8]
    ids = {r["session_id"] for r in listed}
    assert "team-run-7" in ids
    assert "claude-code:9e9e9e9e-8888-7777-6666-555555555555" in ids
    for run in detail:
        assert [c["turn"] for c in run["calls"]] == list(range(1, 9)), run["session_id"]
        growth = [c["prompt_tokens"] for c in run["calls"]]
        assert growth == sorted(growth) and run["last_prompt_tokens"] > run["first_prompt_tokens"]
