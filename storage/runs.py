"""Run (session) resolution at write time, shared by every backend.

A backend locks the runs a batch touches, reads their current turn counts, calls
`plan_runs`, then inserts the traces and upserts the `runs` rollup in the same
transaction, so turn numbers stay 1..n, unique and contiguous per run even with
several writers.

Rule (for now): a call that carries an explicit run id (the `x-llmprof-session`
header) joins that run as its next turn; any other call starts a run of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .trace import Trace

MAX_SESSION_ID = 200


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


def session_key(trace: Trace) -> str:
    hint = (trace.session_hint or "").strip()
    if hint:
        return hint[:MAX_SESSION_ID]
    return f"call-{trace.uid}"


def plan_runs(
    traces: Sequence[Trace], existing_turns: dict[str, int]
) -> tuple[list[tuple[str, int]], list[RunDelta]]:
    """Assign `(session_id, turn)` to each trace, in order, and sum the rollup deltas.

    `existing_turns` maps the session ids already stored to their turn counts.
    """
    assigned: list[tuple[str, int]] = []
    deltas: dict[str, RunDelta] = {}
    for trace in traces:
        sid = session_key(trace)
        delta = deltas.get(sid)
        if delta is None:
            before = existing_turns.get(sid, 0)
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
    return assigned, list(deltas.values())
