"""Summaries: spend per day, per model, per prompt template, and what is reclaimable."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, HTTPException, Query

from ..deps import StoreDep
from ..models import DayRow, ModelRow, Reclaimable, RouteRow

router = APIRouter(prefix="/api", tags=["summaries"])
# Listed in the schema, so clients (and schemathesis) know the valid values.
ZONES = sorted(z for z in available_timezones() if "/" in z or z == "UTC")
_ZONE_SET = set(available_timezones())


@router.get("/summary/daily", response_model=list[DayRow])
async def daily(
    store: StoreDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    tz: Annotated[
        str | None,
        Query(
            max_length=64,
            description="IANA time zone for day boundaries (default: the server's)",
            json_schema_extra={"enum": ZONES},
        ),
    ] = None,
) -> list[dict]:
    """One row per calendar day, oldest first, days without calls included."""
    if tz is not None and tz not in _ZONE_SET:
        raise HTTPException(422, f"tz: unknown time zone {tz!r} (use an IANA name)")
    return await store.daily_summary(days=days, tz=tz)


@router.get("/summary/models", response_model=list[ModelRow])
async def models(store: StoreDep) -> list[dict]:
    """Calls, tokens and cost per model, most expensive first."""
    return await store.model_summary()


@router.get("/routes", response_model=list[RouteRow])
async def routes(store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 15) -> list[dict]:
    """Prompt templates ranked by cost."""
    return await store.routes(limit=limit)


@router.get("/reclaimable", response_model=Reclaimable)
async def reclaimable(store: StoreDep) -> dict:
    """What could be cut, in dollars, with ranked actions and a monthly projection."""
    return await store.reclaimable_summary()
