"""Recorded calls: newest first with keyset paging, and one call in full."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from ..deps import StoreDep
from ..models import ErrorBody, Health, TraceDetail, TraceItem

router = APIRouter(prefix="/api", tags=["traces"])
NOT_FOUND = {404: {"model": ErrorBody, "description": "no such trace"}}


@router.get("/health", response_model=Health)
async def health(store: StoreDep) -> dict:
    """Liveness, the backend in use and the number of stored traces."""
    return {"ok": True, "backend": store.backend, "traces": await store.count()}


@router.get("/traces", response_model=list[TraceItem])
async def recent(
    store: StoreDep,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    before: Annotated[int | None, Query(ge=1, description="only ids lower than this")] = None,
) -> list[dict]:
    """Recent calls, newest first. A full page carries a `Link: <...>; rel="next"` header."""
    items = await store.recent(limit=limit, before=before)
    if len(items) == limit:
        nxt = request.url.include_query_params(before=items[-1]["id"], limit=limit)
        response.headers["Link"] = f'<{nxt.path}?{nxt.query}>; rel="next"'
    return items


@router.get("/traces/{trace_id}", response_model=TraceDetail, responses=NOT_FOUND)
async def get_trace(store: StoreDep, trace_id: Annotated[int, Path(ge=1)]) -> dict:
    """One call with its request, response, raw usage and analysis."""
    item = await store.get(trace_id)
    if item is None:
        raise HTTPException(404, f"no trace with id {trace_id}")
    return item
