"""Findings, templates and the profiler pass on whole requests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.analysis import findings, routes
from addon.analysis.profile import profile
from addon.analysis.tokens import count, encoding_for
from storage.trace import Trace

DOC = "\n".join(
    f"Clause {i}: the supplier shall deliver the goods in good order." for i in range(8)
)
TS = 1_780_000_000.0


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    monkeypatch.setattr(findings, "SEEN_EXACT", findings._Seen())
    monkeypatch.setattr(findings, "SEEN_ROUTE", findings._Seen())


def anthropic_request(system: str, n_tools: int = 0, user: str = "hi") -> dict:
    tools = [
        {
            "name": f"tool_{i}",
            "description": f"Tool number {i} " * 20,
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        for i in range(n_tools)
    ]
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": system,
        "tools": tools,
        "messages": [{"role": "user", "content": user}],
    }


def run(
    request,
    provider="anthropic",
    api="messages",
    model="claude-sonnet-4-5",
    prompt=None,
    cached=0,
    written=0,
    called=(),
):
    t = Trace(
        provider=provider,
        api=api,
        model=model,
        request=request,
        ts=TS,
        prompt_tokens=prompt,
        completion_tokens=50,
        cached_tokens=cached,
        cache_write_tokens=written,
        called_tools=list(called),
    )
    assert profile(t) == []
    return t


def titles(t):
    return [(f["severity"], f["title"]) for f in t.analysis["findings"]]


def test_duplicated_document_is_reclaimable_at_the_calls_own_rate():
    req = anthropic_request("Be brief.", user=f"Contract:\n\n{DOC}\n\nSame again:\n\n{DOC}")
    t = run(req, prompt=400)
    assert ("warn", "Duplicated content") in titles(t)
    enc = encoding_for("anthropic", "claude-sonnet-4-5")
    scale = 400 / t.analysis["attribution"]["local_tokens"]
    assert t.analysis["findings"][0]["reclaimable_tokens"] == int(count(DOC, enc) * scale)
    # effective input rate: 400 uncached tokens at $3/M -> the saving is tokens x $3/M
    assert t.reclaim_dup_usd == pytest.approx(int(count(DOC, enc) * scale) * 3 / 1e6)
    assert t.reclaimable_usd == t.reclaim_dup_usd <= t.cost_usd


def test_anthropic_uncached_prefix_claims_dollars_only_when_repeated():
    system = "You are a careful assistant. " * 300  # ~1,800 tokens
    req = anthropic_request(system, n_tools=3)
    first = run(req, prompt=3000)
    assert first.reclaim_cache_usd == 0 and "Stable prefix sent without caching" not in str(
        titles(first)
    )
    second = run(req, prompt=3000)
    prefix = second.components["system prompt"] + second.components["tool schemas"]
    # full price $3/M minus cache-read $0.30/M on the prefix
    assert second.reclaim_cache_usd == pytest.approx(prefix * (3 - 0.3) / 1e6)
    assert ("warn", "Stable prefix sent without caching") in titles(second)
    # the tool ledger carries what is left of each schema's cost after that claim
    for use in second.tool_usage:
        assert use["residual_usd"] == pytest.approx(use["tokens"] * 0.3 / 1e6)
    assert second.reclaimable_usd <= second.cost_usd


def test_cache_hits_and_writes_are_ok():
    req = anthropic_request("You are a careful assistant. " * 300)
    run(req, prompt=2000)
    hit = run(req, prompt=2000, cached=1900)
    assert titles(hit)[0] == ("ok", "Prompt caching is working") and hit.reclaim_cache_usd == 0
    wrote = run(anthropic_request("Another prompt entirely. " * 300), prompt=2000, written=1900)
    assert titles(wrote)[0] == ("ok", "Prefix written to the cache")


def test_auto_caching_providers_get_the_reason_not_dollars():
    def req(day):
        return {
            "model": "gpt-4o",
            "messages": [
                {
                    "role": "system",
                    "content": f"Today is 2026-12-0{day}. " + "Follow the rules. " * 400,
                },
                {"role": "user", "content": "hi"},
            ],
        }

    run(req(4), "openai", "chat", "gpt-4o", prompt=2000)
    same = run(req(4), "openai", "chat", "gpt-4o", prompt=2000)
    assert ("tip", "Identical prefix not served from the cache") in titles(same)
    assert same.reclaim_cache_usd == 0
    changed = run(req(5), "openai", "chat", "gpt-4o", prompt=2000)
    assert ("tip", "Prefix changes between calls") in titles(changed)


def test_advisories_and_lean():
    lean = run(anthropic_request("Be brief."), prompt=30)
    assert titles(lean) == [("ok", "Lean context")]
    tools = run(anthropic_request("Be brief.", n_tools=12), prompt=2000)
    assert ("tip", "Tool schemas dominate the context") in titles(tools)
    history = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "go"}]
        + [
            {"role": "assistant", "content": "Step result: " + "done and verified. " * 40},
            {"role": "user", "content": "next"},
        ]
        * 5,
    }
    h = run(history, "openai", "chat", "gpt-4o", prompt=1500)
    assert ("tip", "History and tool results dominate") in titles(h)


def test_called_tools_are_marked_in_the_ledger_rows():
    t = run(anthropic_request("Be brief.", n_tools=3), prompt=600, called=["tool_1"])
    assert {u["tool"]: u["called"] for u in t.tool_usage} == {
        "tool_0": False,
        "tool_1": True,
        "tool_2": False,
    }


def test_templates_mask_volatile_parts_and_skip_header_lines():
    header = "x-anthropic-billing-header: cc_version=2.0.14;cc_entrypoint=cli"
    a = routes.route_of(
        "messages",
        {"system": f"{header}\nYou are Claude Code. Today is 2026-12-04."},
        ["Bash", "Read"],
    )
    b = routes.route_of(
        "messages",
        {"system": f"{header}\nYou are Claude Code. Today is 2026-12-05."},
        ["Read", "Bash"],
    )
    c = routes.route_of(
        "messages", {"system": "You are Claude Code. Today is 2026-12-05."}, ["Read"]
    )
    assert a[0] == b[0] != c[0]
    assert a[1] == "You are Claude Code. Today is 2026-12-04.  +2 tools"
    assert routes.route_of("chat", {"messages": []}, [])[1] == "(no system prompt)"
    assert routes.mask("run 3f2a9c1e-1111-2222-3333-444455556666 at 10:22 in /srv/app/main.py") == (
        "run <uuid> at <time> in <path>"
    )


@settings(max_examples=60, deadline=None)
@given(
    system=st.text(min_size=0, max_size=3000),
    users=st.lists(st.text(max_size=800), min_size=1, max_size=6),
    prompt=st.integers(min_value=1, max_value=200_000),
    cached=st.integers(min_value=0, max_value=200_000),
)
def test_invariants(system, users, prompt, cached):
    findings.SEEN_EXACT, findings.SEEN_ROUTE = findings._Seen(), findings._Seen()
    messages = [{"role": "user", "content": u} for u in users]
    req = {"model": "claude-sonnet-4-5", "system": system, "messages": messages}
    cached = min(cached, prompt)
    for _ in range(2):
        t = run(req, prompt=prompt, cached=cached)
        assert sum(t.components.values()) == prompt
        assert t.cached_tokens <= t.prompt_tokens
        assert 0 <= t.reclaimable_usd <= t.cost_usd
        assert (
            sum(u["residual_usd"] for u in t.tool_usage) + t.reclaimable_usd <= t.cost_usd + 1e-12
        )
