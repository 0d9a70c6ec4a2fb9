"""A local, deterministic, fake HTTPS LLM upstream for end-to-end tests.

It is a raw ASGI app served by uvicorn (h11, TLS) in a background thread of the test process, on
an ephemeral ``127.0.0.1`` port.  Its certificate is issued by a throwaway CA (``ca_cert``) and its
SAN covers every host in ``HOSTNAMES`` (OpenAI, Anthropic, Gemini, Vertex, Azure, OpenRouter, Groq,
Mistral, DeepSeek, Together, Fireworks, xAI, localhost) and 127.0.0.1, so both a client that
talks to it directly (see ``direct_httpx_client`` / ``curl_direct_args``) and mitmproxy
(``--ssl-insecure``, redirected by tests/support/redirect.py) can reach it under the real
hostnames.

Endpoints (real wire formats, byte-identical answers for identical requests):

* ``POST /v1/chat/completions`` - OpenAI Chat Completions: a ``chat.completion`` JSON, or with
  ``"stream": true`` SSE ``chat.completion.chunk`` events ending in ``data: [DONE]``; the
  usage-only chunk (``choices: []``) is sent only with ``stream_options.include_usage``.
* ``POST /v1/messages`` - Anthropic Messages: a ``message`` JSON, or SSE (``event:``/``data:``):
  message_start, content_block_start, ping, content_block_delta*, content_block_stop,
  message_delta (cumulative usage), message_stop.
* ``GET /v1/models`` - a small OpenAI-style model list.
* Responses, Gemini (and Vertex), Ollama, embeddings, legacy completions, ``…/chat/completions``
  under any prefix (Azure deployments, OpenRouter, Groq) with per-host usage flavours, and the
  non-LLM ``/v1/files``, ``count_tokens``, ``countTokens``, ``input_tokens``: see
  tests/support/fake_providers.py.
* anything else - 404 with an OpenAI-shaped error.

Reply content: a fixed sentence split into text pieces (one piece = one delta = one output token).
If the last user message contains ``CALL_TOOL <name>`` the reply is instead a tool call to
``<name>`` whose JSON arguments (``TOOL_ARGUMENTS``) are split over several deltas
(``tool_calls`` for OpenAI, a ``tool_use`` block with ``input_json_delta`` for Anthropic).
``max_tokens`` / ``max_completion_tokens`` smaller than the reply truncates it (finish_reason
``length`` / stop_reason ``max_tokens``).

Token accounting is a pure function of the request, so tests can compute it with
``expected_usage(provider, request_json, headers)``:

* base = ``8 + len(canonical JSON of the prompt fields) // 4`` where the prompt fields are
  messages/tools/functions (OpenAI) or system/messages/tools (Anthropic), canonical =
  ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8 - so it does
  not depend on how a client serialises the body, nor on ``stream``/``stream_options``.
* OpenAI: ``prompt_tokens = base + cached`` (cached is *included*, as in the real API),
  ``completion_tokens = pieces + reasoning``.
* Anthropic: ``input_tokens = base`` (cache *excluded*, as in the real API),
  ``cache_read_input_tokens = cached``, ``cache_creation_input_tokens = cache_write``,
  ``output_tokens = pieces``; message_start carries ``output_tokens: 1``.

Control headers (all optional; read from the request the upstream receives):

* ``x-fake-status: 429`` - answer with that status and the provider's error JSON
  (OpenAI ``{"error":{"message","type","param","code"}}``,
  Anthropic ``{"type":"error","error":{"type","message"}}``), even for streamed requests.
* ``x-fake-gzip: 1`` / ``0`` - force / forbid ``Content-Encoding: gzip``. Without it the upstream
  honours ``Accept-Encoding`` (gzip if the client lists gzip - httpx and both SDKs do by default,
  curl only with ``--compressed``). SSE is gzipped incrementally with a sync flush per event.
* ``x-fake-encoding: gzip|deflate|br|zstd|identity`` - this Content-Encoding whatever the client
  accepts (streams are flushed per event, so each event still leaves at once).
* ``x-fake-split: 1`` - write each SSE event in two pieces, split mid-line, 20 ms apart.
* ``x-fake-delay-ms: N`` - sleep N ms between SSE events.
* ``x-fake-ttft-ms: N`` - sleep N ms after the response headers, before the first event (stream)
  or before the headers (non-streamed).
* ``x-fake-abort-after: N`` - streamed: send N events, then close the connection without
  finishing the chunked body; non-streamed: send the headers and half the body, then close.
* ``x-fake-stream-error-after: N`` - streamed: after N events send a provider error event
  (Anthropic ``event: error`` overloaded_error, OpenAI ``data: {"error": ...}``) and end cleanly.
* ``x-fake-cached: N`` - cached prompt tokens (see above). ``x-fake-cache-write: N`` - Anthropic
  ``cache_creation_input_tokens``. ``x-fake-reasoning: N`` - OpenAI ``reasoning_tokens``.
* ``x-fake-words: N`` - number of text pieces in the reply (default ``len(REPLY_PIECES)``).

Every request (any path) is recorded as a ``RecordedRequest`` in ``FakeUpstream.requests``.
``FakeUpstream(tls=False)`` serves plain HTTP (a local Ollama or vLLM).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import ipaddress
import json
import logging
import socket
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn

HOSTNAMES = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "localhost",
    "aiplatform.googleapis.com",
    "us-central1-aiplatform.googleapis.com",
    "*.openai.azure.com",
    "*.services.ai.azure.com",
    "openrouter.ai",
    "api.groq.com",
    "api.mistral.ai",
    "api.deepseek.com",
    "api.together.xyz",
    "api.fireworks.ai",
    "api.x.ai",
    "llm.internal.example",
)
CREATED = 1_700_000_000
SYSTEM_FINGERPRINT = "fp_fake0001"
REPLY_PIECES = (
    "Hello",
    " from",
    " the",
    " fake",
    " upstream!",
    " This",
    " reply",
    " is",
    " deterministic.",
)
TOOL_ARGUMENTS = '{"location": "Paris, France", "unit": "celsius", "days": 3}'
RESOLVED_OPENAI_MODELS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
}
MODELS_LIST = {
    "object": "list",
    "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": CREATED, "owned_by": "system"},
        {"id": "gpt-4o", "object": "model", "created": CREATED, "owned_by": "system"},
    ],
}

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request (fake upstream)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (fake upstream)."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded."),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Overloaded",
}


# --------------------------------------------------------------------------- helpers


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(request_json: Any) -> str:
    # stream_options only changes whether a usage chunk is sent, not which reply (or ids) it is
    if isinstance(request_json, dict) and "stream_options" in request_json:
        request_json = {k: v for k, v in request_json.items() if k != "stream_options"}
    return hashlib.sha256(_canonical(request_json)).hexdigest()


def _lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> dict:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in items}


def _int_header(headers: dict, name: str, default: int = 0) -> int:
    try:
        return int(headers.get(name, default))
    except (TypeError, ValueError):
        return default


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_user_text(request_json: dict) -> str:
    for message in reversed(request_json.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def requested_tool(request_json: dict) -> str | None:
    """The tool name if the last user message says ``CALL_TOOL <name>``."""
    words = _last_user_text(request_json).split()
    for i, word in enumerate(words[:-1]):
        if word == "CALL_TOOL":
            return words[i + 1].strip(".,;:!?\"'")
    return None


def tool_argument_fragments() -> list[str]:
    """TOOL_ARGUMENTS split into the deltas the upstream streams (4 uneven pieces)."""
    cuts = [0, 1, 14, 37, len(TOOL_ARGUMENTS)]
    return [TOOL_ARGUMENTS[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def _prompt_fields(provider: str, request_json: dict) -> dict:
    keys = (
        ("messages", "tools", "functions")
        if provider == "openai"
        else ("system", "messages", "tools")
    )
    return {k: request_json[k] for k in keys if k in request_json}


def _max_tokens(provider: str, request_json: dict) -> int | None:
    keys = ("max_completion_tokens", "max_tokens") if provider == "openai" else ("max_tokens",)
    for key in keys:
        value = request_json.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the upstream will answer to one request (pure function of request + headers)."""

    provider: str
    pieces: tuple[str, ...]  # text pieces, or tool-argument fragments
    tool: str | None
    truncated: bool
    base_tokens: int
    cached: int
    cache_write: int
    reasoning: int
    digest: str

    @property
    def text(self) -> str:
        return "" if self.tool else "".join(self.pieces)


def plan_reply(
    provider: str, request_json: dict, headers: Mapping | Iterable | None = None
) -> Plan:
    if provider not in ("openai", "anthropic"):
        raise ValueError(f"unknown provider {provider!r}")
    hdrs = _lower_headers(headers)
    tool = requested_tool(request_json)
    truncated = False
    if tool:
        pieces = tuple(tool_argument_fragments())
    else:
        n = _int_header(hdrs, "x-fake-words", len(REPLY_PIECES))
        pieces = tuple(REPLY_PIECES[i % len(REPLY_PIECES)] for i in range(max(n, 1)))
        limit = _max_tokens(provider, request_json)
        if limit is not None and limit < len(pieces):
            pieces, truncated = pieces[:limit], True
    return Plan(
        provider=provider,
        pieces=pieces,
        tool=tool,
        truncated=truncated,
        base_tokens=8 + len(_canonical(_prompt_fields(provider, request_json))) // 4,
        cached=max(_int_header(hdrs, "x-fake-cached"), 0),
        cache_write=max(_int_header(hdrs, "x-fake-cache-write"), 0),
        reasoning=max(_int_header(hdrs, "x-fake-reasoning"), 0),
        digest=_digest(request_json),
    )


def _openai_usage(plan: Plan) -> dict:
    prompt = plan.base_tokens + plan.cached
    completion = len(plan.pieces) + plan.reasoning
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": plan.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": plan.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _anthropic_usage(plan: Plan, output_tokens: int) -> dict:
    return {
        "input_tokens": plan.base_tokens,
        "cache_creation_input_tokens": plan.cache_write,
        "cache_read_input_tokens": plan.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": plan.cache_write,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def expected_usage(
    provider: str, request_json: dict, headers: Mapping | Iterable | None = None
) -> dict:
    """The ``usage`` object the upstream returns for this request, in the provider's shape.

    ``provider`` is ``"openai"`` (chat completions) or ``"anthropic"`` (messages). ``headers`` are
    the request headers (only the ``x-fake-*`` ones matter). For OpenAI streams this is the usage
    chunk's ``usage``; for Anthropic streams it is the final cumulative state (message_start's
    input/cache counts plus message_delta's ``output_tokens``).
    """
    plan = plan_reply(provider, request_json, headers)
    if provider == "openai":
        return _openai_usage(plan)
    return _anthropic_usage(plan, len(plan.pieces))


def expected_text(
    provider: str, request_json: dict, headers: Mapping | Iterable | None = None
) -> str:
    """The assistant text of the reply ("" for a tool call)."""
    return plan_reply(provider, request_json, headers).text


# --------------------------------------------------------------------------- wire formats


def _ids(plan: Plan) -> dict:
    d = plan.digest
    return {
        "chatcmpl": f"chatcmpl-fake{d[:24]}",
        "msg": f"msg_fake{d[:24]}",
        "call": f"call_fake{d[24:40]}",
        "toolu": f"toolu_fake{d[24:40]}",
        "req": f"req_fake{d[40:56]}",
    }


def openai_response(request_json: dict, plan: Plan) -> bytes:
    ids = _ids(plan)
    message: dict[str, Any] = {"role": "assistant", "content": plan.text, "refusal": None}
    finish = "length" if plan.truncated else "stop"
    if plan.tool:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": ids["call"],
                "type": "function",
                "function": {"name": plan.tool, "arguments": "".join(plan.pieces)},
            }
        ]
        finish = "tool_calls"
    message["annotations"] = []
    body = {
        "id": ids["chatcmpl"],
        "object": "chat.completion",
        "created": CREATED,
        "model": _openai_model(request_json),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _openai_usage(plan),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode()


def _openai_model(request_json: dict) -> str:
    model = str(request_json.get("model") or "gpt-4o-mini")
    return RESOLVED_OPENAI_MODELS.get(model, model)


def openai_events(request_json: dict, plan: Plan) -> list[bytes]:
    ids = _ids(plan)
    include_usage = bool((request_json.get("stream_options") or {}).get("include_usage"))
    model = _openai_model(request_json)

    def chunk(delta: dict, finish: str | None = None, choices: bool = True) -> bytes:
        obj: dict[str, Any] = {
            "id": ids["chatcmpl"],
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": (
                [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                if choices
                else []
            ),
        }
        if include_usage:
            obj["usage"] = None
        return f"data: {_compact(obj)}\n\n".encode()

    events: list[bytes] = []
    if plan.tool:
        first = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": ids["call"],
                    "type": "function",
                    "function": {"name": plan.tool, "arguments": ""},
                }
            ],
            "refusal": None,
        }
        events.append(chunk(first))
        for frag in plan.pieces:
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
        events.append(chunk({}, "tool_calls"))
    else:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        for piece in plan.pieces:
            events.append(chunk({"content": piece}))
        events.append(chunk({}, "length" if plan.truncated else "stop"))
    if include_usage:
        last = json.loads(chunk({}, choices=False)[len(b"data: ") :])
        last["usage"] = _openai_usage(plan)
        events.append(f"data: {_compact(last)}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_response(request_json: dict, plan: Plan) -> bytes:
    ids = _ids(plan)
    if plan.tool:
        content = [
            {
                "type": "tool_use",
                "id": ids["toolu"],
                "name": plan.tool,
                "input": json.loads("".join(plan.pieces)),
            }
        ]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": plan.text}]
        stop = "max_tokens" if plan.truncated else "end_turn"
    body = {
        "id": ids["msg"],
        "type": "message",
        "role": "assistant",
        "model": str(request_json.get("model") or "claude-sonnet-4-5"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(plan, len(plan.pieces)),
    }
    return _compact(body).encode()


def anthropic_events(request_json: dict, plan: Plan) -> list[bytes]:
    ids = _ids(plan)

    def ev(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: {_compact(data)}\n\n".encode()

    start_message = {
        "id": ids["msg"],
        "type": "message",
        "role": "assistant",
        "model": str(request_json.get("model") or "claude-sonnet-4-5"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(plan, 1),
    }
    events = [ev("message_start", {"type": "message_start", "message": start_message})]
    if plan.tool:
        block = {"type": "tool_use", "id": ids["toolu"], "name": plan.tool, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in plan.pieces]
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in plan.pieces]
        stop = "max_tokens" if plan.truncated else "end_turn"
    events.append(
        ev(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
    )
    events.append(ev("ping", {"type": "ping"}))
    for delta in deltas:
        events.append(
            ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": len(plan.pieces)},
            },
        )
    )
    events.append(ev("message_stop", {"type": "message_stop"}))
    return events


def error_body(provider: str, status: int, message: str | None = None) -> bytes:
    """The provider's error JSON for ``status`` (what ``x-fake-status`` returns)."""
    if provider == "anthropic":
        etype = _ANTHROPIC_ERRORS.get(status, "api_error")
        message = message or f"{etype} (fake upstream)"
        return _compact({"type": "error", "error": {"type": etype, "message": message}}).encode()
    etype, code, default = _OPENAI_ERRORS.get(status, ("server_error", None, "Error."))
    message = message or default
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return (json.dumps(body, indent=2) + "\n").encode()


def _stream_error_event(provider: str) -> bytes:
    if provider == "anthropic":
        data = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return f"event: error\ndata: {_compact(data)}\n\n".encode()
    data = {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    return f"data: {_compact(data)}\n\n".encode()


# --------------------------------------------------------------------------- recording


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # as received, names lower-cased by the server
    body: bytes
    http_version: str
    client: tuple[str, int] | None
    received_at: float  # time.monotonic()

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def json(self) -> Any:
        return json.loads(self.body)


# --------------------------------------------------------------------------- ASGI app


class _AbortConnection(Exception):
    pass


class _DropAbortNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


class _Encoder:
    """Incremental Content-Encoding with a flush per write, so each event leaves at once."""

    def __init__(self, name: str):
        self.name = name
        if name == "gzip":
            self._z = zlib.compressobj(6, zlib.DEFLATED, 31)
        elif name == "deflate":
            self._z = zlib.compressobj(6, zlib.DEFLATED, 15)  # zlib-wrapped, as RFC 9110 says
        elif name == "br":
            import brotli

            self._br = brotli.Compressor()
        elif name == "zstd":
            import zstandard

            self._zs = zstandard.ZstdCompressor().compressobj()
            self._zs_block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        else:
            raise ValueError(f"unknown encoding {name!r}")

    def compress(self, data: bytes) -> bytes:
        if self.name in ("gzip", "deflate"):
            return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)
        if self.name == "br":
            return self._br.process(data) + self._br.flush()
        return self._zs.compress(data) + self._zs.flush(self._zs_block)

    def flush(self) -> bytes:
        if self.name in ("gzip", "deflate"):
            return self._z.flush()
        if self.name == "br":
            return self._br.finish()
        return self._zs.flush()


class _Responder:
    """Writes one response, applying the encoding / split / delay / abort controls."""

    def __init__(self, send, headers: dict, encoding: str | None, disconnected: asyncio.Event):
        self._send = send
        self._gzip = _Encoder(encoding) if encoding else None
        self._split = headers.get("x-fake-split") == "1"
        self._disconnected = disconnected

    def encoding_headers(self) -> list[tuple[bytes, bytes]]:
        if self._gzip is None:
            return []
        return [(b"content-encoding", self._gzip.name.encode()), (b"vary", b"Accept-Encoding")]

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        headers = [*headers, *self.encoding_headers()]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    def _encode(self, data: bytes) -> bytes:
        if self._gzip is None:
            return data
        return self._gzip.compress(data)

    async def event(self, data: bytes) -> None:
        if self._disconnected.is_set():
            raise _AbortConnection
        if self._split and len(data) > 1:
            cut = max(1, min(len(data) - 1, len(data) // 2))
            await self._write(self._encode(data[:cut]))
            await asyncio.sleep(0.02)
            data = data[cut:]
        await self._write(self._encode(data))

    async def _write(self, data: bytes) -> None:
        if data:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self) -> None:
        tail = self._gzip.flush() if self._gzip is not None else b""
        await self._send({"type": "http.response.body", "body": tail, "more_body": False})


class FakeLLMApp:
    def __init__(self, upstream: FakeUpstream):
        self.upstream = upstream

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        self.upstream._record(
            RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=raw_headers,
                body=bytes(body),
                http_version=scope.get("http_version", ""),
                client=tuple(scope["client"]) if scope.get("client") else None,
                received_at=time.monotonic(),
            )
        )
        headers = {k.lower(): v for k, v in raw_headers}

        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await self._dispatch(scope, bytes(body), headers, send, disconnected)
        except _AbortConnection:
            return  # uvicorn closes the transport: "returned without completing response"
        finally:
            watcher.cancel()

    async def _dispatch(self, scope, body: bytes, headers: dict, send, disconnected) -> None:
        method, path = scope["method"], scope["path"]
        accept = headers.get("accept-encoding", "")
        gz_ctl = headers.get("x-fake-gzip")
        gzip = gz_ctl == "1" or (gz_ctl != "0" and _accepts_gzip(accept))
        encoding = headers.get("x-fake-encoding") or ("gzip" if gzip else None)
        out = _Responder(send, headers, None if encoding == "identity" else encoding, disconnected)

        if method == "GET" and path == "/v1/models":
            return await _respond(out, 200, (json.dumps(MODELS_LIST, indent=2) + "\n").encode())
        from tests.support import fake_providers  # the other shapes (imports this module)

        if await fake_providers.handle(method, path, body, headers, out, scope):
            return
        path, deployment = fake_providers.chat_alias(path)
        routes = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}
        provider = routes.get(path)
        if provider is None:
            return await _respond(
                out, 404, error_body("openai", 404, f"Invalid URL ({method} {path})")
            )
        if method != "POST":
            return await _respond(out, 405, error_body(provider, 400, f"{method} not allowed"))
        status = _int_header(headers, "x-fake-status", 200)
        if status != 200:
            return await _respond(out, status, error_body(provider, status))
        try:
            request_json = json.loads(body)
            if not isinstance(request_json, dict):
                raise ValueError("not an object")
        except ValueError:
            return await _respond(out, 400, error_body(provider, 400))

        plan = plan_reply(provider, request_json, headers)
        rid = _ids(plan)["req"].encode()
        id_header = (b"x-request-id" if provider == "openai" else b"request-id", rid)
        ttft = _int_header(headers, "x-fake-ttft-ms") / 1000
        abort_after = headers.get("x-fake-abort-after")

        if not request_json.get("stream"):
            if ttft:
                await asyncio.sleep(ttft)
            payload = (openai_response if provider == "openai" else anthropic_response)(
                fake_providers.as_deployment(request_json, deployment), plan
            )
            if provider == "openai":
                payload = fake_providers.flavor_json(headers, payload)
            if abort_after is not None:
                encoded = out._encode(payload)
                await out.start(
                    200,
                    [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(encoded)).encode()),
                        id_header,
                    ],
                )
                await out._write(encoded[: len(encoded) // 2])
                await asyncio.sleep(0.05)
                raise _AbortConnection
            return await _respond(out, 200, payload, extra=[id_header])

        events = (openai_events if provider == "openai" else anthropic_events)(
            fake_providers.as_deployment(request_json, deployment), plan
        )
        if provider == "openai":
            events = fake_providers.flavor_events(headers, request_json, plan, events)
        delay = _int_header(headers, "x-fake-delay-ms") / 1000
        abort_n = int(abort_after) if abort_after is not None else None
        error_after = headers.get("x-fake-stream-error-after")
        if error_after is not None:
            events = [*events[: int(error_after)], _stream_error_event(provider)]
        await out.start(
            200,
            [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                id_header,
            ],
        )
        if ttft:
            await asyncio.sleep(ttft)
        for i, event in enumerate(events):
            if abort_n is not None and i >= abort_n:
                await asyncio.sleep(0.05)  # let the last event leave before the close
                raise _AbortConnection
            if i and delay:
                await asyncio.sleep(delay)
            await out.event(event)
        await out.finish()


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


async def _respond(
    out: _Responder,
    status: int,
    payload: bytes,
    extra: Iterable[tuple[bytes, bytes]] = (),
    content_type: bytes = b"application/json",
) -> None:
    encoded = out._encode(payload) + (out._gzip.flush() if out._gzip is not None else b"")
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(encoded)).encode()),
        *extra,
        *out.encoding_headers(),
    ]
    await out._send({"type": "http.response.start", "status": status, "headers": headers})
    await out._send({"type": "http.response.body", "body": encoded, "more_body": False})


# --------------------------------------------------------------------------- certificates


def generate_certs(
    directory: Path, hostnames: Iterable[str] = HOSTNAMES
) -> tuple[Path, Path, Path]:
    """Write ca.pem, upstream-cert.pem, upstream-key.pem into ``directory``; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmprof fake upstream test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-llm-upstream")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_path = directory / "ca.pem"
    cert_path = directory / "upstream-cert.pem"
    key_path = directory / "upstream-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


# --------------------------------------------------------------------------- server


def _direct_transport_classes(module: Any) -> tuple[type, type]:
    """Transport wrappers for ``module`` (httpx, or httpx2 which the openai/anthropic SDKs use)
    that send every request to the fake upstream, keeping Host and SNI of the original URL."""
    if module not in _TRANSPORTS:

        class Direct(module.BaseTransport):
            def __init__(self, upstream: FakeUpstream, inner: Any):
                self._upstream, self._inner = upstream, inner

            def handle_request(self, request: Any) -> Any:
                self._upstream._redirect(request)
                return self._inner.handle_request(request)

            def close(self) -> None:
                self._inner.close()

        class AsyncDirect(module.AsyncBaseTransport):
            def __init__(self, upstream: FakeUpstream, inner: Any):
                self._upstream, self._inner = upstream, inner

            async def handle_async_request(self, request: Any) -> Any:
                self._upstream._redirect(request)
                return await self._inner.handle_async_request(request)

            async def aclose(self) -> None:
                await self._inner.aclose()

        _TRANSPORTS[module] = (Direct, AsyncDirect)
    return _TRANSPORTS[module]


_TRANSPORTS: dict[Any, tuple[type, type]] = {}


class FakeUpstream:
    """The fake upstream server. Use ``start()``/``stop()`` or as a context manager."""

    def __init__(self, cert_dir: str | Path | None = None, *, tls: bool = True):
        self.tls = tls
        self._tmp = None
        if cert_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-upstream-")
            cert_dir = self._tmp.name
        self.cert_dir = Path(cert_dir)
        self.ca_cert, self.cert_file, self.key_file = generate_certs(self.cert_dir)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle
    def start(self, timeout: float = 10.0) -> FakeUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this: without it every answer written as headers +
        # body waits ~40 ms for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            FakeLLMApp(self),
            http="h11",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            ssl_certfile=str(self.cert_file) if self.tls else None,
            ssl_keyfile=str(self.key_file) if self.tls else None,
            timeout_graceful_shutdown=1,
        )
        uv_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _DropAbortNoise) for f in uv_log.filters):
            uv_log.addFilter(_DropAbortNoise())
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
            name=f"fake-upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake upstream failed to start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True  # type: ignore[union-attr]
                self._thread.join(timeout)
        self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses
    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``: the value for env LLMPROF_TEST_UPSTREAM."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- recorded requests
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def requests_with(self, header: str, value: str) -> list[RecordedRequest]:
        """Recorded requests carrying ``header: value`` (e.g. a per-test ``x-test-id``)."""
        return [r for r in self.requests if r.header(header) == value]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} requests, got {len(self.requests)}")
            time.sleep(0.01)
        return self.requests

    # -- direct (proxy-less) clients
    def _redirect(self, request: Any) -> None:
        host = request.url.host
        request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        request.extensions = {**request.extensions, "sni_hostname": host}

    def ssl_context(self):
        import ssl

        return ssl.create_default_context(cafile=str(self.ca_cert))

    def direct_httpx_client(self, *, module: Any = httpx, **kwargs: Any) -> Any:
        """A ``module.Client`` (httpx by default; pass ``module=httpx2`` for the openai /
        anthropic SDKs' ``http_client=``) that sends any https URL straight to this server, no
        proxy, keeping the URL's host in the Host header and SNI, verifying against ``ca_cert``."""
        direct, _ = _direct_transport_classes(module)
        inner = module.HTTPTransport(verify=self.ssl_context(), trust_env=False)
        return module.Client(transport=direct(self, inner), trust_env=False, **kwargs)

    def direct_async_httpx_client(self, *, module: Any = httpx, **kwargs: Any) -> Any:
        _, direct = _direct_transport_classes(module)
        inner = module.AsyncHTTPTransport(verify=self.ssl_context(), trust_env=False)
        return module.AsyncClient(transport=direct(self, inner), trust_env=False, **kwargs)

    def curl_direct_args(self, host: str = "api.openai.com") -> list[str]:
        """curl arguments that reach this server directly for ``https://<host>/...``."""
        return [
            "--noproxy",
            "*",
            "--cacert",
            str(self.ca_cert),
            "--connect-to",
            f"{host}:443:127.0.0.1:{self.port}",
        ]
