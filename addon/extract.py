"""Exchange -> Trace: decoding, provider parsing and timing. Pure and CPU-only.

Runs in the writer's worker thread, never on the proxy's event loop. It never
raises on bad input: whatever cannot be read is left unset on the trace and
named in the returned list of problems, which the writer counts and logs.

A response is framed one of four ways, decided from its content type, status and
shape: `sse` (text/event-stream), `ndjson` (Ollama's native streams), `jsonarray`
(Gemini `streamGenerateContent` without `alt=sse`) or `json` (one body; every
4xx/5xx). The three stream framings feed the provider's StreamParser event by
event, with the index of the network chunk that completed each event, which is
where time to first token comes from. The whole body is read in one pass (the
chunks only decide those indexes); a JSON array is parsed whole, not framed and
then parsed element by element.

A call the provider reported no usage for, but answered with a 2xx, gets token
estimates from the tokenizer (`usage_source = "estimated"`; see `estimate.py`).
"""

from __future__ import annotations

from typing import Any

from storage.trace import Trace

from . import providers
from .capture import Exchange
from .decode import DecodeError, make_decoder
from .estimate import Estimator, default_estimator, estimate
from .providers import Shape
from .providers.base import Result, load_json
from .sse import events_of, fed
from .streams import JSONArrayParser, array_values, ndjson_events

FRAMERS = {
    "sse": events_of,
    "ndjson": ndjson_events,
    "jsonarray": lambda pieces: fed(JSONArrayParser(), pieces),
}
_DEFAULT: Any = object()  # build_trace(estimator=...) not given: use the tokenizer
_default_estimator: list[Estimator | None] = []


def build_trace(
    ex: Exchange, estimator: Estimator | None = _DEFAULT
) -> tuple[Trace | None, list[str]]:
    """The trace for one exchange (None if it is not an LLM call) and its problems.

    `estimator` counts tokens for calls without reported usage (None: never estimate).
    """
    shape = providers.detect(ex.method, ex.host, ex.path)
    if shape is None:
        return None, []
    problems: list[str] = []
    request = _request_json(ex, problems)
    req = request if isinstance(request, dict) else {}
    body_model = req.get("model") if isinstance(req.get("model"), str) else None
    trace = Trace(
        uid=ex.uid,
        ts=ex.ts,
        provider=shape.provider,
        host=ex.host if ex.port in (80, 443) else f"{ex.host}:{ex.port}",
        endpoint=ex.path,
        api=shape.api,
        # The path decides where it names a model (Gemini, Vertex) or an Azure deployment.
        requested_model=shape.path_model or body_model,
        status=ex.status,
        outcome=_outcome(ex),
        session_hint=ex.session_hint,
        request=request,
        request_headers=ex.request_headers or None,
        latency_ms=_ms(ex.end_ts - ex.ts) if ex.end_ts else None,
    )
    framing = _framing(ex, shape, request)
    trace.streamed = framing != "json" or req.get("stream") is True or shape.stream
    if ex.overflow:
        problems.append("response larger than the capture limit")
    result = _parse_response(ex, shape.module, framing, problems)
    _apply(trace, result, ex, framing)
    if ex.error and not trace.error:
        trace.error = ex.error
    history = getattr(shape.module, "history_of", None)
    if history is not None and (note := history(request)) is not None:
        trace.analysis = note
    if _estimable(trace, result, ex):
        if estimator is _DEFAULT:
            estimator = _tokenizer()
        if estimator is not None:
            _estimate(trace, result, estimator, problems)
    return trace, problems


def _estimable(trace: Trace, res: Result, ex: Exchange) -> bool:
    """No usage, yet a 2xx answer to a readable request: the call was billed."""
    return (
        trace.usage_source == "none"
        and ex.status is not None
        and 200 <= ex.status < 300
        and isinstance(trace.request, dict)
        and (res.response is not None or bool(res.output_text))
    )


def _tokenizer() -> Estimator | None:
    if not _default_estimator:
        _default_estimator.append(default_estimator())
    return _default_estimator[0]


def _estimate(trace: Trace, res: Result, estimator: Estimator, problems: list[str]) -> None:
    try:
        prompt, completion = estimate(
            estimator,
            trace.provider,
            trace.model,
            trace.api or "",
            trace.request,
            res.output_text,
        )
    except Exception as e:  # noqa: BLE001 - a tokenizer failure leaves the call unestimated
        problems.append(f"token estimate: {e}")
        return
    trace.prompt_tokens, trace.completion_tokens = prompt, completion
    trace.total_tokens = prompt + (completion or 0)
    trace.usage_source = "estimated"


def _framing(ex: Exchange, shape: Shape, request: Any) -> str:
    ctype = (ex.content_type or "").lower()
    if "text/event-stream" in ctype:
        return "sse"
    if ex.status is not None and not 200 <= ex.status < 300:
        return "json"
    if "ndjson" in ctype or "jsonl" in ctype:
        return "ndjson"
    framing = getattr(shape.module, "framing", None)
    return framing(request, shape) if framing is not None else "json"


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


def _parse_response(ex: Exchange, module: Any, framing: str, problems: list[str]) -> Result:
    pieces = _decoded_chunks(ex, problems)
    if framing in FRAMERS:
        parser = module.StreamParser()
        values = None
        if framing == "jsonarray" and hasattr(parser, "on_object"):
            values = array_values(pieces)  # parsed once, not framed then parsed
        if values is not None:
            for value, i in values:
                parser.on_object(value, i)
        else:
            for event, i in FRAMERS[framing](pieces):
                parser.on_event(event, i)
        return parser.finish()
    body = b"".join(pieces)
    if not body:
        return Result()
    parsed = load_json(body)
    if parsed is None:
        problems.append("response body is not JSON")
        return Result(response=None)
    return module.parse_body(parsed)


def _apply(trace: Trace, res: Result, ex: Exchange, framing: str) -> None:
    trace.model = res.model or trace.requested_model
    trace.response = res.response
    trace.called_tools = res.called_tools
    trace.error = res.error
    if framing != "json" and res.first_content_chunk is not None and ex.chunk_times:
        at = ex.chunk_times[min(res.first_content_chunk, len(ex.chunk_times) - 1)]
        trace.ttft_ms = _ms(at - ex.ts)
    usage = res.usage
    if usage is None or trace.outcome == "http_error":
        return
    trace.usage_raw = usage.raw
    if usage.prompt_tokens is not None or usage.completion_tokens is not None:
        trace.prompt_tokens = usage.prompt_tokens
        trace.completion_tokens = usage.completion_tokens
        trace.cached_tokens = usage.cached_tokens
        trace.cache_write_tokens = usage.cache_write_tokens
        trace.reasoning_tokens = usage.reasoning_tokens
        trace.usage_source = "provider"
        trace.total_tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
