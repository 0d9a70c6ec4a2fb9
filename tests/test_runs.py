"""Run resolution on both backends: hints, harness ids, continuity and its hard cases."""

from __future__ import annotations

import itertools
import json

import pytest

from addon.analysis import findings
from addon.analysis.profile import profile
from storage import BaseStore
from storage.trace import Trace

_ts = itertools.count(1_780_000_000, 5)
SYSTEM = "You are a coding agent."


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    monkeypatch.setattr(findings, "SEEN_EXACT", findings._Seen())
    monkeypatch.setattr(findings, "SEEN_ROUTE", findings._Seen())


def chat(messages, reply, *, outcome="ok", system=SYSTEM, headers=None, hint=None, uid=None):
    """A profiled OpenAI chat call: `messages` sent, `reply` (text) answered."""
    request = {"model": "gpt-4o", "messages": [{"role": "system", "content": system}, *messages]}
    response = (
        None
        if outcome != "ok"
        else {
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply,
                        "refusal": None,
                        "annotations": [],
                    },
                }
            ],
        }
    )
    t = Trace(
        provider="openai",
        api="chat",
        model="gpt-4o",
        request=request,
        response=response,
        prompt_tokens=100,
        completion_tokens=10,
        outcome=outcome,
        ts=float(next(_ts)),
        request_headers=headers,
        session_hint=hint,
        status=200 if outcome == "ok" else 500,
        **({"uid": uid} if uid else {}),
    )
    profile(t)
    return t


def user(text):
    return {"role": "user", "content": text}


def assistant(text):  # as SDKs send a reply back: no null fields
    return {"role": "assistant", "content": text}


async def record(store: BaseStore, *traces: Trace) -> list[tuple[str, int]]:
    ids = [await store.record(t) for t in traces]  # one by one: each sees the ones before
    got = {r["id"]: (r["session_id"], r["turn"]) for r in await store.recent(limit=500)}
    return [got[i] for i in ids]


async def test_a_conversation_is_one_run_across_turns(store: BaseStore):
    t1 = chat([user("Fix the bug in main.py")], "Which bug?")
    t2 = chat([user("Fix the bug in main.py"), assistant("Which bug?"), user("The crash")], "Done")
    # the agent rewrites its system prompt between turns: continuity ignores it
    t3 = chat(
        [
            user("Fix the bug in main.py"),
            assistant("Which bug?"),
            user("The crash"),
            assistant("Done"),
            user("Thanks"),
        ],
        "Welcome",
        system=SYSTEM + " Now: 10:31.",
    )
    runs = await record(store, t1, t2, t3)
    assert [turn for _, turn in runs] == [1, 2, 3] and len({sid for sid, _ in runs}) == 1


async def test_two_chats_opening_with_hi_stay_apart_even_interleaved(store: BaseStore):
    a1 = chat([user("hi")], "Hello! How can I help?")
    b1 = chat([user("hi")], "Hi there, what do you need?")
    a2 = chat([user("hi"), assistant("Hello! How can I help?"), user("Write a poem")], "Roses")
    b2 = chat([user("hi"), assistant("Hi there, what do you need?"), user("Sum 2+2")], "4")
    runs = await record(store, a1, b1, a2, b2)
    assert runs[0][0] != runs[1][0]
    assert runs[2] == (runs[0][0], 2) and runs[3] == (runs[1][0], 2)


async def test_retry_of_a_failed_call_joins_but_a_repeat_after_success_does_not(store: BaseStore):
    first = chat([user("Summarize the log")], None, outcome="upstream_error")
    retry = chat([user("Summarize the log")], "Summary")
    again = chat([user("Summarize the log")], "Summary")  # a new chat that opens the same way
    runs = await record(store, first, retry, again)
    assert runs[1] == (runs[0][0], 2) and runs[2][0] != runs[0][0] and runs[2][1] == 1


async def test_a_fork_joins_its_run_and_compaction_starts_a_new_one(store: BaseStore):
    base = [user("Plan the release"), assistant("Step 1, step 2")]
    t1 = chat(base[:1], "Step 1, step 2")
    fork_a = chat([*base, user("Expand step 1")], "Step 1 details")
    fork_b = chat([*base, user("Expand step 2")], "Step 2 details")
    compacted = chat([user("Summary of earlier work: a release plan."), user("Continue")], "OK")
    runs = await record(store, t1, fork_a, fork_b, compacted)
    assert runs[:3] == [(runs[0][0], 1), (runs[0][0], 2), (runs[0][0], 3)]
    assert runs[3][0] != runs[0][0]


async def test_explicit_header_and_harness_ids(store: BaseStore):
    claude_v1 = (
        "user_" + "a" * 64 + "_account_11111111-2222-3333-4444-555555555555_session_"
        "66666666-7777-8888-9999-000000000000"
    )
    claude_v2 = json.dumps({"device_id": "d", "session_id": "abc-123"})

    def anthropic(user_id, text):
        request = {
            "model": "claude-sonnet-4-5",
            "system": SYSTEM,
            "metadata": {"user_id": user_id},
            "messages": [user(text)],
        }
        t = Trace(
            provider="anthropic",
            api="messages",
            model="claude-sonnet-4-5",
            request=request,
            prompt_tokens=50,
            completion_tokens=5,
            ts=float(next(_ts)),
        )
        profile(t)
        return t

    traces = [
        anthropic(claude_v1, "one"),
        anthropic(claude_v1, "two"),
        anthropic(claude_v2, "x"),
        chat([user("a")], "b", headers={"session_id": "codex-1"}),
        chat([user("c")], "d", headers={"x-opencode-session": "oc-9"}),
        chat([user("e")], "f", hint="mine", headers={"session_id": "codex-1"}),
    ]
    runs = await record(store, *traces)
    assert runs == [
        ("claude-code:66666666-7777-8888-9999-000000000000", 1),
        ("claude-code:66666666-7777-8888-9999-000000000000", 2),
        ("claude-code:abc-123", 1),
        ("codex:codex-1", 1),
        ("opencode:oc-9", 1),
        ("mine", 1),
    ]


async def test_batches_and_replay_resolve_the_same(store: BaseStore, make_store):
    convo = [
        chat([user("q1")], "a1"),
        chat([user("q1"), assistant("a1"), user("q2")], "a2"),
        chat([user("q1"), assistant("a1"), user("q2"), assistant("a2"), user("q3")], "a3"),
    ]
    ids = await store.record_many(convo)  # one batch: later traces chain to earlier ones
    assert await store.record_many(convo) == ids  # a replay changes nothing
    run = await store.session((await store.get(ids[0]))["session_id"])
    assert [c["turn"] for c in run["calls"]] == [1, 2, 3] and run["turns"] == 3
