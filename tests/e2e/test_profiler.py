"""The profiler end to end: an agent-like Anthropic call through the real mitmdump,
its components, findings and cost checked against numbers computed here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import pytest

import storage
from addon.analysis.tokens import count, encoding_for
from tests.support.clients import API_KEY
from tests.support.fake_upstream import expected_usage

ADDON = Path(__file__).resolve().parents[2] / "addon" / "llmprof.py"
ENC = encoding_for("anthropic", "claude-sonnet-4-5")
SYSTEM = "You are a meticulous research agent. Follow the house rules. " * 270
DOC = "\n".join(f"Section {i}: revenue grew in every region, led by services." for i in range(30))
TOOLS = [
    {
        "name": f"tool_{i:02d}",
        "description": f"Looks things up in source {i}. " * 12,
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    }
    for i in range(12)
]


def agent_request(turns: int) -> dict:
    messages = [{"role": "user", "content": f"Read this:\n\n{DOC}\n\nand this copy:\n\n{DOC}"}]
    for i in range(turns):
        messages.append({"role": "assistant", "content": f"Finding {i}: " + "noted. " * 30})
        messages.append({"role": "user", "content": f"Continue with step {i + 1}."})
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 200,
        "system": SYSTEM,
        "tools": TOOLS,
        "messages": messages,
    }


async def read_all(db_url: str) -> list[dict]:
    async with storage.make_store(db_url, readonly=True) as s:
        return [await s.get(item["id"]) for item in reversed(await s.recent(limit=10))]


def test_agent_call_is_profiled(db_url, proxy_factory, upstream, tmp_path, monkeypatch):
    proxy = proxy_factory(
        [ADDON], env={"LLMPROF_HOME": str(tmp_path / "home"), "LLMPROF_DB_URL": db_url}
    )
    for key, value in proxy.env_for_clients(base={}).items():
        monkeypatch.setenv(key, value)
    sent = []
    with anthropic.Anthropic(api_key=API_KEY, max_retries=0) as client:
        for turns in (20, 21):
            request = agent_request(turns)
            headers = {"x-fake-cached": "0", "x-llmprof-session": "agent"}
            client.messages.create(**request, extra_headers=headers)
            sent.append(request)
    assert proxy.stop() == 0
    first, second = asyncio.run(read_all(db_url))

    for rec, request in ((first, sent[0]), (second, sent[1])):
        usage = expected_usage("anthropic", request, {"x-fake-cached": "0"})
        prompt = usage["input_tokens"]
        assert rec["prompt_tokens"] == prompt
        # components add up to the provider's count, exactly
        assert sum(rec["components"].values()) == prompt == rec["detail"]["tokens"]
        assert set(rec["components"]) == {
            "system prompt",
            "tool schemas",
            "user input",
            "history (assistant)",
        }
        tools = next(c for c in rec["detail"]["children"] if c["name"] == "tool schemas")
        assert [c["name"] for c in tools["children"]] == [t["name"] for t in TOOLS]
        assert sum(c["tokens"] for c in tools["children"]) == rec["components"]["tool schemas"]
        # each share within 3 points of an independent tiktoken count of the same text
        local = {
            "system prompt": count(SYSTEM, ENC),
            "history (assistant)": sum(
                count(m["content"], ENC) for m in request["messages"] if m["role"] == "assistant"
            ),
        }
        total_local = rec["analysis"]["attribution"]["local_tokens"]
        for name, n in local.items():
            assert abs(rec["components"][name] / prompt - n / total_local) < 0.03, name
        assert rec["analysis"]["attribution"]["estimated"] is True  # not Anthropic's tokenizer
        # cost by hand: claude-sonnet-4-5 $3/M input, $15/M output, nothing cached
        assert rec["cost_usd"] == pytest.approx(
            prompt * 3 / 1e6 + usage["output_tokens"] * 15 / 1e6
        )
        assert rec["route_label"].startswith("You are a meticulous research agent.")
        assert rec["route_label"].endswith("+12 tools")
        found = {f["title"]: f for f in rec["analysis"]["findings"]}
        dup = found["Duplicated content"]
        assert dup["reclaimable_tokens"] == int(count(DOC, ENC) * prompt / total_local), (
            "one extra copy of the document"
        )
        assert dup["save_usd"] == pytest.approx(dup["reclaimable_tokens"] * 3 / 1e6)
        assert "Long system prompt" in found
        assert rec["reclaimable_usd"] <= rec["cost_usd"]

    # the same prefix twice, never cached: the second call is told to use cache_control
    assert "Stable prefix sent without caching" not in {
        f["title"] for f in first["analysis"]["findings"]
    }
    cache = next(
        f
        for f in second["analysis"]["findings"]
        if f["title"] == "Stable prefix sent without caching"
    )
    prefix = second["components"]["system prompt"] + second["components"]["tool schemas"]
    assert cache["reclaimable_tokens"] == prefix
    assert cache["save_usd"] == pytest.approx(prefix * (3 - 0.3) / 1e6)
    assert first["route"] == second["route"] and second["turn"] == 2

    async def summary():
        async with storage.make_store(db_url, readonly=True) as s:
            return await s.reclaimable_summary(), await s.routes()

    reclaim, templates = asyncio.run(summary())
    assert reclaim["by_source"]["caching"] == pytest.approx(cache["save_usd"], abs=1e-6)
    assert reclaim["reclaimable_usd"] <= reclaim["cost_usd"]
    assert templates[0]["calls"] == 2 and templates[0]["label"] == second["route_label"]
