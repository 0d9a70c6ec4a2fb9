"""Runs (sessions): an agent's calls grouped, and one run's timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from ..deps import StoreDep
from ..models import ErrorBody, SessionDetail, SessionRow

router = APIRouter(prefix="/api", tags=["sessions"])


@router.get("/sessions", response_model=list[SessionRow])
async def sessions(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    min_turns: Annotated[int, Query(ge=1, le=1_000_000)] = 2,
) -> list[dict]:
    """Runs with at least `min_turns` calls, most recently active first."""
    return await store.sessions(limit=limit, min_turns=min_turns)


@router.get(
    "/sessions/{session_id}",
    response_model=SessionDetail,
    responses={404: {"model": ErrorBody, "description": "no such run"}},
)
async def session(
    store: StoreDep, session_id: Annotated[str, Path(min_length=1, max_length=200)]
) -> dict:
    """One run: its totals and every call in turn order."""
    run = await store.session(session_id)
    if run is None:
        raise HTTPException(404, f"no run with id {session_id!r}")
    return run
