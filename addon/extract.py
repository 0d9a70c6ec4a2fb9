"""Exchange -> Trace: decoding, provider parsing and timing. Pure and CPU-only.

Runs in the writer's worker thread, never on the proxy's event loop. It never
raises on bad input: whatever cannot be read is left unset on the trace and
named in the returned list of problems, which the writer counts and logs.
"""

from __future__ import annotations

from typing import Any

from storage.trace import Trace

from . import providers
from .capture import Exchange
from .decode import DecodeError, make_decoder
from .providers.base import Result, load_json
from .sse import SSEParser


def build_trace(ex: Exchange) -> tuple[Trace | None, list[str]]:
    """The trace for one exchange (None if it is not an LLM call) and its problems."""
    shape = providers.detect(ex.method, ex.host, ex.path)
    if shape is None:
        return None, []
    problems: list[str] = []
    request = _request_json(ex, problems)
    req = request if isinstance(request, dict) else {}
    trace = Trace(
        uid=ex.uid,
        ts=ex.ts,
        provider=shape.provider,
        host=ex.host if ex.port in (80, 443) else f"{ex.host}:{ex.port}",
        endpoint=ex.path,
        api=shape.api,
        requested_model=req.get("model") if isinstance(req.get("model"), str) else None,
        status=ex.status,
        outcome=_outcome(ex),
        session_hint=ex.session_hint,
        request=request,
        request_headers=ex.request_headers or None,
        latency_ms=_ms(ex.end_ts - ex.ts) if ex.end_ts else None,
    )
    is_sse = "text/event-stream" in (ex.content_type or "").lower()
    trace.streamed = is_sse or req.get("stream") is True
    if ex.overflow:
        problems.append("response larger than the capture limit")
    result = _parse_response(ex, shape.module, is_sse, problems)
    _apply(trace, result, ex, is_sse)
    if ex.error and not trace.error:
        trace.error = ex.error
    return trace, problems


def _outcome(ex: Exchange) -> str:
    if ex.error is not None:
        return "client_abort" if ex.client_abort else "upstream_error"
    if ex.status is not None and ex.status >= 400:
        return "http_error"
    return "ok"


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000.0, 3)


def _request_json(ex: Exchange, problems: list[str]) -> Any:
    if not ex.request_body:
        return None
    try:
        body = make_decoder(ex.request_encoding)(ex.request_body)
    except DecodeError as e:
        problems.append(f"request body: {e}")
        return None
    parsed = load_json(body)
    if parsed is None:
        problems.append("request body is not JSON")
    return parsed


def _decoded_chunks(ex: Exchange, problems: list[str]) -> list[bytes]:
    try:
        decode = make_decoder(ex.response_encoding)
        return [decode(c) for c in ex.chunks]
    except DecodeError as e:
        problems.append(f"response body: {e}")
        return []


def _parse_response(ex: Exchange, module: Any, is_sse: bool, problems: list[str]) -> Result:
    pieces = _decoded_chunks(ex, problems)
    if is_sse:
        parser = module.StreamParser()
        sse = SSEParser()
        for i, piece in enumerate(pieces):
            for event in sse.feed(piece):
                parser.on_event(event, i)
        for event in sse.close():
            parser.on_event(event, len(pieces) - 1)
        return parser.finish()
    body = b"".join(pieces)
    if not body:
        return Result()
    parsed = load_json(body)
    if parsed is None:
        problems.append("response body is not JSON")
        return Result(response=None)
    return module.parse_body(parsed)


def _apply(trace: Trace, res: Result, ex: Exchange, is_sse: bool) -> None:
    trace.model = res.model or trace.requested_model
    trace.response = res.response
    trace.called_tools = res.called_tools
    trace.error = res.error
    if is_sse and res.first_content_chunk is not None and ex.chunk_times:
        at = ex.chunk_times[min(res.first_content_chunk, len(ex.chunk_times) - 1)]
        trace.ttft_ms = _ms(at - ex.ts)
    usage = res.usage
    if usage is not None and trace.outcome != "http_error":
        trace.prompt_tokens = usage.prompt_tokens
        trace.completion_tokens = usage.completion_tokens
        trace.cached_tokens = usage.cached_tokens
        trace.cache_write_tokens = usage.cache_write_tokens
        trace.reasoning_tokens = usage.reasoning_tokens
        trace.usage_raw = usage.raw
        trace.usage_source = "provider"
        trace.total_tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
