"""Run (session) resolution at write time, shared by every backend.

A backend locks the runs a batch touches, reads their current turn counts, calls
`plan_runs`, then inserts the traces and upserts the `runs` rollup in the same
transaction, so turn numbers stay 1..n, unique and contiguous per run even with
several writers.

Which run a call joins (the profiler fills the inputs; see
`addon/analysis/conversation.py` for the fingerprints):

1. its `session_hint`: the `x-llmprof-session` header, else the run id a known
   harness sent (Claude Code, Codex, OpenCode);
2. conversation continuity, from the fingerprints of its message list's
   prefixes (system prompt excluded):
   a. exact: an earlier call whose request plus its own reply is a prefix of this
      call's messages (`reply_fp`) — the reply itself must match, so two chats that
      both open with "hi" and got different answers stay apart;
   b. retry: an earlier call with the very same messages (`conv_fp`) that FAILED,
      within RETRY_WINDOW (an identical request after a success is a new chat
      that happens to open the same way);
   c. loose: an earlier call whose messages are a prefix followed by an assistant
      turn (the client edited the reply), if exactly one run has such a call and
      it used the same prompt template;
   The longest prefix wins; among equals, the most recent call. Forks (two
   continuations of one reply) both join the run. Context compaction that
   rewrites the middle starts a new run unless a hint ties it.
3. otherwise a run of its own (`call-<uid>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .trace import Trace

MAX_SESSION_ID = 200
RETRY_WINDOW = 600.0  # seconds
# Only the most recent assistant turns are looked up: the call that produced the
# latest reply is nearly always recorded; older ones cover a few gaps.
LOOKBACK_ASSISTANT_TURNS = 8


@dataclass(slots=True)
class Earlier:
    """A stored (or earlier in the batch) call, as continuity sees it."""

    conv_fp: str | None
    reply_fp: str | None
    session_id: str
    ts: float
    route: str | None
    outcome: str


@dataclass(slots=True)
class RunDelta:
    """What a batch adds to one run."""

    session_id: str
    turns: int  # the run's turn count after the batch
    started: float
    last: float
    tokens: int
    cost_usd: float
    provider: str | None
    first_prompt_tokens: int | None
    last_prompt_tokens: int | None
    is_new: bool


def hinted(trace: Trace) -> str | None:
    hint = (trace.session_hint or "").strip()
    return hint[:MAX_SESSION_ID] if hint else None


def _positions(trace: Trace) -> list[int]:
    """1-based prefix lengths worth looking up, longest first: the whole list (a
    retry) and each recent assistant turn (the reply that ends a parent call)."""
    chain, roles = trace.conv_chain or [], trace.conv_roles or []
    assistants = [j + 1 for j in range(len(roles)) if roles[j] == "assistant"]
    picks = {len(chain)} if chain else set()
    for p in assistants[-LOOKBACK_ASSISTANT_TURNS:]:
        picks.update((p, p - 1))
    return sorted((p for p in picks if p >= 1), reverse=True)


def lookup_keys(traces: Sequence[Trace]) -> list[str]:
    """Fingerprints to fetch candidates for (by conv_fp or reply_fp), sorted."""
    keys: set[str] = set()
    for t in traces:
        if hinted(t) is None and t.conv_chain:
            keys.update(t.conv_chain[p - 1] for p in _positions(t))
    return sorted(keys)


def _continuity(t: Trace, by_reply: dict, by_conv: dict) -> str | None:
    chain, roles = t.conv_chain or [], t.conv_roles or []
    for p in _positions(t):
        key = chain[p - 1]
        if roles[p - 1] == "assistant" and (hit := by_reply.get(key)):
            return max(hit, key=lambda e: e.ts).session_id  # a.
        if p == len(chain) and (same := by_conv.get(key)):
            latest = max(same, key=lambda e: e.ts)  # only a failure not yet retried
            if latest.outcome != "ok" and abs(t.ts - latest.ts) <= RETRY_WINDOW:
                return latest.session_id  # b.
        elif p < len(roles) and roles[p] == "assistant":
            runs = {e.session_id for e in by_conv.get(key, ()) if e.route == t.route}
            if len(runs) == 1 and len({e.session_id for e in by_conv[key]}) == 1:
                return runs.pop()  # c.
    return None


def resolve_sessions(traces: Sequence[Trace], earlier: Sequence[Earlier]) -> list[str]:
    """The session id of each trace, in order; earlier traces of the batch count too."""
    by_reply: dict[str, list[Earlier]] = {}
    by_conv: dict[str, list[Earlier]] = {}

    def remember(e: Earlier) -> None:
        if e.reply_fp:
            by_reply.setdefault(e.reply_fp, []).append(e)
        if e.conv_fp:
            by_conv.setdefault(e.conv_fp, []).append(e)

    for e in earlier:
        remember(e)
    out = []
    for t in traces:
        sid = hinted(t) or _continuity(t, by_reply, by_conv) or f"call-{t.uid}"
        out.append(sid)
        remember(Earlier(t.conv_fp, t.reply_fp, sid, t.ts, t.route, t.outcome))
    return out


def plan_runs(
    traces: Sequence[Trace],
    session_ids: Sequence[str],
    existing: dict[str, tuple[int, float]],
) -> tuple[list[tuple[str, int]], list[RunDelta], list[str]]:
    """Assign `(session_id, turn)` to each trace, in order, and sum the rollup deltas.

    `existing` maps the session ids already stored to `(turns, last ts)`. Turns follow
    the calls' start times: a call that started before one already numbered (several
    proxies, or a long call finishing after a short one) is appended here and its run
    is listed last in the result, for the store to renumber by start time.
    """
    assigned: list[tuple[str, int]] = []
    deltas: dict[str, RunDelta] = {}
    latest: dict[str, float] = {sid: last for sid, (_, last) in existing.items()}
    reorder: set[str] = set()
    for trace, sid in zip(traces, session_ids, strict=True):
        if trace.ts < latest.get(sid, trace.ts):
            reorder.add(sid)
        latest[sid] = max(latest.get(sid, trace.ts), trace.ts)
        delta = deltas.get(sid)
        if delta is None:
            before = existing.get(sid, (0, 0.0))[0]
            delta = deltas[sid] = RunDelta(
                session_id=sid,
                turns=before,
                started=trace.ts,
                last=trace.ts,
                tokens=0,
                cost_usd=0.0,
                provider=trace.provider,
                first_prompt_tokens=trace.prompt_tokens if before == 0 else None,
                last_prompt_tokens=None,
                is_new=before == 0,
            )
        delta.turns += 1
        delta.started = min(delta.started, trace.ts)
        delta.last = max(delta.last, trace.ts)
        delta.tokens += trace.total_tokens or 0
        delta.cost_usd += trace.cost_usd or 0.0
        delta.last_prompt_tokens = trace.prompt_tokens
        assigned.append((sid, delta.turns))
    return assigned, list(deltas.values()), sorted(reorder)


def run_models(traces: Sequence[Trace], session_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Distinct (session, model) pairs of a batch, sorted: the run_models rows to add."""
    pairs = {(sid, t.model) for t, sid in zip(traces, session_ids, strict=True) if t.model}
    return sorted(pairs)
