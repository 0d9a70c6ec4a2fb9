"""Response models: the documented shape of every endpoint (OpenAPI at /docs).

Fields are typed and described; `extra="allow"` lets a newer store add a field
without the API silently dropping it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorInfo(BaseModel):
    status: int
    code: str = Field(description="not_found | invalid_parameter | method_not_allowed | ...")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """The one error shape of every 4xx/5xx answer."""

    error: ErrorInfo


class Health(_Model):
    ok: bool
    backend: str = Field(description="sqlite | postgresql")
    traces: int


class TraceItem(_Model):
    id: int
    uid: str
    ts: float = Field(description="call start, epoch seconds")
    provider: str | None
    host: str | None
    endpoint: str | None
    api: str | None
    model: str | None
    requested_model: str | None
    status: int | None
    outcome: str = Field(description="ok | http_error | upstream_error | client_abort")
    error: str | None
    streamed: bool
    prompt_tokens: int | None = Field(
        description="all input tokens, cache reads and writes included"
    )
    completion_tokens: int | None = Field(description="all output tokens, reasoning included")
    total_tokens: int | None
    cached_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    usage_source: str = Field(description="provider | estimated | none")
    cost_usd: float | None
    price_source: str | None
    latency_ms: float | None
    ttft_ms: float | None
    components: dict[str, int]
    called_tools: list[str]
    session_id: str | None
    turn: int | None
    route: str | None
    route_label: str | None
    reclaimable_tokens: int | None
    reclaimable_usd: float | None


class TraceDetail(TraceItem):
    request: Any = Field(description="the JSON body as sent")
    response: Any = Field(description="the JSON body; for a stream, the reassembled message")
    usage_raw: Any = Field(description="the provider's usage object as received")
    request_headers: dict[str, str] | None
    detail: Any
    analysis: Any


class DayRow(_Model):
    day: str
    calls: int
    tokens: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced_calls: int


class ModelRow(_Model):
    model: str | None
    provider: str | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    tokens: int
    cost_usd: float
    unpriced_calls: int


class SessionRow(_Model):
    session_id: str
    turns: int
    started: float
    last: float
    tokens: int
    cost_usd: float
    models: list[str]
    provider: str | None
    first_prompt_tokens: int | None
    last_prompt_tokens: int | None


class Turn(_Model):
    id: int
    ts: float
    turn: int
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    latency_ms: float | None
    ttft_ms: float | None
    outcome: str
    components: dict[str, int]


class SessionDetail(SessionRow):
    calls: list[Turn] = Field(description="every call of the run, in turn order")


class RouteRow(_Model):
    route: str
    label: str | None
    calls: int
    cost_usd: float
    tokens: int
    avg_prompt_tokens: float | None
    cache_hit_ratio: float
    models: list[str]
    first_seen: float
    last_seen: float


class Reclaimable(_Model):
    calls: int
    cost_usd: float
    reclaimable_usd: float
    pct: float
    unpriced_calls: int
    by_source: dict[str, float | None]
    actions: list[dict[str, Any]]
    projectable: bool
    monthly_reclaimable_usd: float | None
    span_seconds: int
    active_days: int
