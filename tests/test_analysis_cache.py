"""The analysis memos (addon/analysis/memo.py): a warm call, replayed from what earlier
calls left, must give exactly what a fresh walk gives, and every memo stays bounded."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from addon.analysis import attribution as A
from addon.analysis import conversation, findings, memo, replay, walk_openai
from addon.analysis import tokens as T
from tests.test_attribution import (
    SAMPLES,
    _offline_home,  # noqa: F401 - autouse: a throwaway home, STRICT
    mutated,
    words,
)

PROVIDERS = {
    "chat": ("openai", "gpt-4o"),
    "responses": ("openai", "o3"),
    "messages": ("anthropic", "claude-sonnet-4-5"),
    "gemini": ("gemini", "gemini-2.5-pro"),
}


def _attr(api, req, total=None, provider=None, model=None):
    p, m = PROVIDERS.get(api, ("openai", "gpt-4o"))
    return A.attribute(api, req, provider=provider or p, model=model or m, prompt_tokens=total)


def _shape(a: A.Attribution):
    """Everything attribution returns, orders included (dict equality ignores them)."""
    d = a.to_dict()
    return d, list(a.components), [c["name"] for c in a.detail["children"]]


def _fresh(api, req, total=None, **kw):
    """The reference: a walk with the memo bypassed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memo, "key_of", lambda value: None)
        return _shape(_attr(api, req, total, **kw))


def _check(api, req, total=None, **kw):
    want = _fresh(api, req, total, **kw)
    assert _shape(_attr(api, copy.deepcopy(req), total, **kw)) == want  # recorded
    assert _shape(_attr(api, copy.deepcopy(req), total, **kw)) == want  # replayed


@pytest.mark.parametrize("api", sorted(SAMPLES))
def test_samples_replay_exactly(api):
    T.clear_cache()
    _check(api, SAMPLES[api], 5000)
    _check("chat", SAMPLES[api], None)  # read as another shape: other units, no mix-up


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_requests_replay_exactly(api, data):
    _check(api, mutated(SAMPLES[api], data), data.draw(st.none() | st.integers(0, 10**5)))


def _turn(i: int, tool: str) -> list[dict]:
    return [
        {
            "role": "assistant",
            "content": words(20),
            "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": tool, "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": f"c{i}", "content": words(60) + "\n\n" + words(60)},
    ]


def test_growing_run_replays_exactly():
    msgs = [{"role": "system", "content": words(50)}, {"role": "user", "content": words(10)}]
    for i in range(12):
        msgs += _turn(i, ["read", "grep", "ls"][i % 3])
        if i == 6:  # a re-read file: a duplicated block
            msgs.append({"role": "tool", "tool_call_id": "c1", "content": msgs[5]["content"]})
        _check("chat", {"messages": msgs, "tools": SAMPLES["chat"]["tools"]}, 40 * (i + 10))


# A small pool, so lists share, repeat and reorder the same messages; tool results
# whose call ids earlier calls name differently.
POOL = [
    {"role": "user", "content": "short"},
    {"role": "user", "content": [{"type": "text", "text": "x " * 150}]},
    {"role": "assistant", "content": "y " * 120},
    *(
        {
            "role": "assistant",
            "tool_calls": [{"id": cid, "function": {"name": name, "arguments": '{"a": 1}'}}],
        }
        for cid, name in (("c1", "read"), ("c1", "grep"), ("c2", "ls"))
    ),
    {"role": "tool", "tool_call_id": "c1", "content": "z " * 140},
    {"role": "tool", "tool_call_id": "c2", "content": "z " * 140},
    {"role": "system", "content": "rules"},
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["append", "edit", "cut", "fork"]), st.integers(0, 99)),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["chat", "responses"]),
)
def test_lists_that_grow_fork_and_change_replay_exactly(ops, api):
    msgs: list[dict] = []
    saved: list[dict] = []
    for op, i in ops:
        if op == "append":
            msgs = [*msgs, POOL[i % len(POOL)]]
        elif op == "edit" and msgs:  # compaction: the middle of the history rewritten
            msgs = [*msgs[: i % len(msgs)], POOL[i % len(POOL)], *msgs[i % len(msgs) + 1 :]]
        elif op == "cut":
            msgs = msgs[: i % (len(msgs) + 1)]
        elif op == "fork":
            saved, msgs = msgs, saved
        key = "messages" if api == "chat" else "input"
        _check(api, {key: copy.deepcopy(msgs)})
        _check_fingerprints(api, {key: copy.deepcopy(msgs)})


def _check_fingerprints(api, req):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memo, "key_of", lambda value: None)
        want = conversation.fingerprints(api, req)
    keys = _attr(api, req).keys
    assert conversation.fingerprints(api, req) == want
    assert conversation.fingerprints(api, copy.deepcopy(req), keys) == want  # ids differ
    assert conversation.fingerprints(api, req, keys) == want


# Run fingerprints are stored and matched against later calls': these digests, made
# before any memo existed, must never change.
STORED = {
    "chat": "f1eaca109b3861ad05df3cea",
    "responses": "19f922cf2ab423e41af6d32d",
    "messages": "11b8c11b9e04fa638f16a73c",
    "gemini": "22654e083ec50065111498a6",
}


@pytest.mark.parametrize("api", sorted(STORED))
def test_fingerprints_are_what_they_were(api):
    for _ in range(2):  # cold, then warm
        chain, roles = conversation.fingerprints(api, SAMPLES[api], _attr(api, SAMPLES[api]).keys)
        assert chain[-1] == STORED[api] and len(chain) == len(roles)
    _check_fingerprints(api, SAMPLES[api])
    reply = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "tool_calls": [
                        {"id": "x", "function": {"name": "f", "arguments": '{"b": 2, "a": 1}'}}
                    ],
                }
            }
        ]
    }
    chat = conversation.fingerprints("chat", SAMPLES["chat"])[0]
    assert conversation.reply_fingerprint("chat", chat, reply) == "53780dc244158e503465a6bd"


PARAS = ["p" * 210, "q" * 250, "  " + "r" * 205 + " ", "s" * 50]


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["append", "cut", "fork"]),
            st.sampled_from(["user input", "tool results", "tool schemas"]),
            st.lists(st.sampled_from(PARAS), min_size=1, max_size=3),
            st.integers(0, 20),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_duplicates_of_growing_block_lists_are_exact(ops):
    blocks: list[tuple[str, str]] = []
    saved: list[tuple[str, str]] = []
    for op, comp, paras, i in ops:
        if op == "append":
            blocks = [*blocks, (comp, "\n\n".join(paras))]
        elif op == "cut":
            blocks = blocks[: i % (len(blocks) + 1)]
        else:
            saved, blocks = blocks, saved
        want: dict[str, int] = {}
        for c, text in blocks:
            if c in findings.DUP_COMPONENTS:
                for p in text.split("\n\n"):
                    if len(p.strip()) >= findings.DUP_MIN_CHARS:
                        want[p.strip()] = want.get(p.strip(), 0) + 1
        want = {p: n for p, n in want.items() if n > 1}
        assert findings._duplicates(blocks) == want
        assert findings._duplicates(copy.deepcopy(blocks)) == want


def test_tool_result_is_labelled_by_the_call_before_it():
    """The same tool message after different calls is one memo key; its label differs."""
    result = {"role": "tool", "tool_call_id": "same-id", "content": words(30)}

    def req(tool):
        call = {"id": "same-id", "type": "function", "function": {"name": tool, "arguments": ""}}
        return {"messages": [{"role": "assistant", "tool_calls": [call]}, result]}

    for tool in ("read", "grep", "read"):
        want = _fresh("chat", req(tool))
        got = _shape(_attr("chat", req(tool)))
        assert got == want
        kids = {c["name"]: c["children"] for c in got[0]["detail"]["children"]}
        assert [k["name"] for k in kids["tool results"]] == [tool]


def test_a_list_is_walked_again_when_names_from_outside_it_change():
    """Responses instructions may carry calls whose outputs come in the input list."""
    out = {"type": "function_call_output", "call_id": "c9", "output": "o " * 50}

    def req(tool, n):
        call = {"type": "function_call", "call_id": "c9", "name": tool, "arguments": "{}"}
        return {"instructions": [call], "input": [out] + [{"role": "user", "content": "u"}] * n}

    for tool, n in (("read", 1), ("read", 2), ("grep", 3), ("grep", 2), ("read", 3)):
        _check("responses", req(tool, n))


def test_values_equal_in_python_but_not_in_json_are_told_apart():
    """True == 1 == 1.0 in Python, but they are different text in a request."""
    for value in (1, True, 1.0, -0.0, 0.0, 0, False, [["k", 1]], {"k": 1}):
        req = {"messages": [{"role": "user", "content": [{"odd": value}]}]}
        assert _shape(_attr("chat", req)) == _fresh("chat", req), value


def test_a_new_model_or_encoding_is_walked_again():
    req = {"messages": [{"role": "user", "content": words(40)}]}
    for model in ("gpt-4o", "gpt-4", "gpt-4o"):
        assert _shape(_attr("chat", req, model=model)) == _fresh("chat", req, model=model)


def test_warm_history_is_not_walked_again(monkeypatch):
    msgs = [{"role": "user", "content": words(30)}]
    for i in range(5):
        msgs += _turn(i, "read")
    _attr("chat", {"messages": msgs})
    walked = []
    real = walk_openai.content
    monkeypatch.setattr(walk_openai, "content", lambda *a: walked.append(a) or real(*a))
    new = {"role": "user", "content": words(5)}
    _attr("chat", copy.deepcopy({"messages": [*msgs, new]}))
    assert len(walked) == 1


def test_lists_hold_the_unit_memo_keys_not_copies():
    """A run of n calls must not keep n copies of its history's keys."""
    T.clear_cache()
    msgs = [{"role": "user", "content": words(30)}]
    for i in range(4):
        msgs += _turn(i, "read")
        _attr("chat", copy.deepcopy({"messages": msgs}))
    assert replay._lists.data
    for keys, _ in (entry for entry, _ in replay._lists.data.values()):
        assert all(replay._units.data[k][0][0] is k for k in keys)


def test_a_message_too_heavy_to_keep_is_walked_and_held_by_no_list(monkeypatch):
    T.clear_cache()
    monkeypatch.setattr(replay._units, "max_weight", 16_000)  # keeps units up to 2 kB
    msgs = [{"role": "user", "content": words(20)}, {"role": "user", "content": words(600)}]
    for i in range(3):
        msgs += _turn(i, "read")
        _check("chat", {"messages": msgs})
    assert all(len(k) < 2000 for k in replay._units.data)
    for keys, _ in (entry for entry, _ in replay._lists.data.values()):
        assert all(replay._units.data[k][0][0] is k for k in keys)  # no list with it


def test_lru_is_bounded_by_weight_and_entries():
    lru = memo.LRU(max_weight=800, max_items=5)
    for i in range(10):
        lru.put(i, str(i), 50)
    assert list(lru.data) == [5, 6, 7, 8, 9] and lru.weight == 250
    lru.put("big", "x", 101)  # over an eighth of the budget: not kept
    assert lru.get("big") is None and lru.get(5) == "5"
    for i in range(10, 13):
        lru.put(i, "y", 100)
    assert lru.weight <= 800 and len(lru.data) <= 5
    assert 6 not in lru.data and 5 in lru.data  # 5 was used last, 6 went first
    lru.put(5, "z", 10)  # a replaced entry's weight is given back
    assert lru.weight == sum(w for _, w in lru.data.values())


def test_clear_cache_empties_every_memo():
    _attr("chat", {"messages": [{"role": "user", "content": words(30)}]})
    assert any(lru.data for lru in memo._all)
    T.clear_cache()
    assert not any(lru.data for lru in memo._all)
    assert T.cache_info() == {"hits": 0, "misses": 0, "size": 0}


def test_keys_are_exact_and_none_for_what_marshal_cannot_write():
    assert memo.key_of({"a": [1, "x"]}) == memo.key_of({"a": [1, "".join(["x"])]})
    assert memo.key_of({"a": 1, "b": 2}) != memo.key_of({"b": 2, "a": 1})  # order is text
    assert memo.key_of({"a": object()}) is None
