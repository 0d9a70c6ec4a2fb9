"""The fake upstream's other API shapes (see tests/support/fake_upstream.py for the server,
the controls and the two original shapes). Real wire formats, deterministic answers.

Endpoints (any host; the Host header picks the OpenAI-compatible flavour, see below):

* ``POST …/responses`` (``/v1/responses``, Azure ``/openai/responses``, ``/openai/v1/responses``)
  - OpenAI Responses: a ``response`` JSON, or with ``"stream": true`` SSE events
  (``event:`` + ``data:``) ending in ``response.completed`` (``response.incomplete`` when
  ``max_output_tokens`` truncates). ``CALL_TOOL <name>`` gives a ``function_call`` item.
* ``POST …/models/{model}:generateContent`` / ``:streamGenerateContent`` (Gemini, and Vertex
  ``/v1/projects/p/locations/l/publishers/google/models/{model}:…``): usageMetadata with zero
  counts omitted (proto3); the stream is SSE with ``?alt=sse``, else one pretty-printed JSON
  array sent element by element. ``:embedContent`` / ``:batchEmbedContents`` (no usage, as the
  real API) and ``:countTokens``.
* ``POST /api/chat``, ``/api/generate``, ``/api/embed`` - Ollama native; NDJSON streams by
  default (``"stream": false`` for one JSON).
* ``POST …/embeddings`` and ``…/completions`` (legacy) - OpenAI shapes.
* ``…/chat/completions`` under any prefix (Azure ``/openai/deployments/{d}/``, ``/openai/v1/``,
  OpenRouter ``/api/v1/``, Groq ``/openai/v1/``) is served by the chat completions code; an Azure
  deployment ``d`` answers as model ``AZURE_DEPLOYMENTS[d]`` (default gpt-4o-2024-08-06).
* Not LLM calls: ``POST /v1/files``, ``/v1/messages/count_tokens``, ``/v1/responses/input_tokens``.

Chat flavours by Host: ``api.groq.com`` puts the usage under ``x_groq.usage`` on the finishing
chunk; ``api.deepseek.com`` reports ``prompt_cache_hit_tokens``/``miss`` instead of details;
``openrouter.ai`` always streams a usage chunk and adds ``usage.cost``; ``api.x.ai`` counts
reasoning outside ``completion_tokens``; ``api.mistral.ai`` puts ``usage`` on the finishing chunk.

Tokens (``expected_wire_usage(api, request, headers, host)`` returns the wire usage object):
base = ``8 + len(canonical JSON of the prompt fields) // 4`` (fields per shape in PROMPT_FIELDS);
cached = ``x-fake-cached``, reasoning/thoughts = ``x-fake-reasoning``, Gemini
``toolUsePromptTokenCount`` = ``x-fake-tool-use``. Output = one token per reply piece.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import fake_upstream as fu

PROMPT_FIELDS = {
    "responses": ("instructions", "input", "tools"),
    "gemini": ("systemInstruction", "system_instruction", "contents", "tools"),
    "gemini_embed": ("content", "requests"),
    "ollama_chat": ("messages", "tools"),
    "ollama_generate": ("system", "prompt"),
    "ollama_embed": ("input",),
    "embeddings": ("input",),
    "completions": ("prompt", "suffix"),
}
AZURE_DEPLOYMENTS = {"prod-4o": "gpt-4o", "mini": "gpt-4o-mini"}
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
GOOGLE_STATUS |= {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
OLLAMA_TIMES = {"total_duration": 5_000_000, "load_duration": 1_000_000}
_MODEL_METHOD = re.compile(r"/models/([^/:]+):([A-Za-z]+)$")
_DEPLOYMENT = re.compile(r"^/openai/deployments/([^/]+)(/.*)$")


# --------------------------------------------------------------------------- planning


def _user_text(api: str, req: dict) -> str:
    if api == "responses":
        items = req.get("input")
        if isinstance(items, str):
            return items
        for item in reversed(items if isinstance(items, list) else []):
            if isinstance(item, dict) and item.get("role") == "user":
                content = item.get("content")
                return fu._text_of(content) if not isinstance(content, str) else content
        return ""
    if api == "gemini":
        for c in reversed(req.get("contents") or []):
            if isinstance(c, dict) and c.get("role", "user") == "user":
                return " ".join(
                    p.get("text", "") for p in c.get("parts") or [] if isinstance(p, dict)
                )
        return ""
    if api in ("ollama_generate", "completions"):
        return req.get("prompt") if isinstance(req.get("prompt"), str) else ""
    return fu._last_user_text(req)


def _max_tokens(api: str, req: dict) -> Any:
    if api == "responses":
        return req.get("max_output_tokens")
    if api == "gemini":
        config = req.get("generationConfig") or req.get("generation_config") or {}
        return config.get("maxOutputTokens") or config.get("max_output_tokens")
    if api.startswith("ollama"):
        return (req.get("options") or {}).get("num_predict")
    return req.get("max_tokens")


def plan(api: str, req: dict, headers: dict) -> fu.Plan:
    hdrs = fu._lower_headers(headers)
    words = _user_text(api, req).split()
    tool = next(
        (w.strip(".,") for p, w in zip(words, words[1:], strict=False) if p == "CALL_TOOL"), None
    )
    truncated = False
    if tool:
        pieces = tuple(fu.tool_argument_fragments())
    else:
        n = fu._int_header(hdrs, "x-fake-words", len(fu.REPLY_PIECES))
        pieces = tuple(fu.REPLY_PIECES[i % len(fu.REPLY_PIECES)] for i in range(max(n, 1)))
        limit = _max_tokens(api, req)
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, truncated = pieces[:limit], True
    fields = {k: req[k] for k in PROMPT_FIELDS.get(api, ()) if k in req}
    return fu.Plan(
        provider=api,
        pieces=pieces,
        tool=tool,
        truncated=truncated,
        base_tokens=8 + len(fu._canonical(fields)) // 4,
        cached=max(fu._int_header(hdrs, "x-fake-cached"), 0),
        cache_write=max(fu._int_header(hdrs, "x-fake-tool-use"), 0),  # Gemini tool-use prompt
        reasoning=max(fu._int_header(hdrs, "x-fake-reasoning"), 0),
        digest=fu._digest(req),
    )


def expected_wire_usage(api: str, req: dict, headers: dict, host: str = "") -> Any:
    """The usage object the fake sends for this request, in the shape's wire format."""
    from tests.support import fake_formats as ff

    p = plan(api, req, headers)
    if api == "chat":
        return flavor_usage(host, fu._openai_usage(fu.plan_reply("openai", req, headers)))
    return ff.wire_usage(api, p)


# --------------------------------------------------------------------------- chat flavours


def chat_alias(path: str) -> tuple[str, str | None]:
    """(/v1/chat/completions or the path unchanged, the Azure deployment if any)."""
    deployment = None
    if m := _DEPLOYMENT.match(path):
        deployment, path = m.group(1), m.group(2)
    if path.endswith("/chat/completions"):
        return "/v1/chat/completions", deployment
    if path.endswith("/v1/messages"):
        return "/v1/messages", deployment
    return path, deployment


def as_deployment(req: dict, deployment: str | None) -> dict:
    if deployment is None:
        return req
    return {**req, "model": AZURE_DEPLOYMENTS.get(deployment, "gpt-4o")}


def _host(headers: dict) -> str:
    return headers.get("host", "").split(":")[0].lower()


def flavor_usage(host: str, usage: dict) -> dict:
    if host == "api.deepseek.com":
        hit = usage["prompt_tokens_details"]["cached_tokens"]
        out = {k: v for k, v in usage.items() if k != "prompt_tokens_details"}
        return {
            **out,
            "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": usage["prompt_tokens"] - hit,
        }
    if host == "openrouter.ai":
        cost = round(usage["prompt_tokens"] * 1.5e-7 + usage["completion_tokens"] * 6e-7, 9)
        return {
            **usage,
            "cost": cost,
            "is_byok": False,
            "cost_details": {"upstream_inference_cost": None},
        }
    if host == "api.x.ai":
        reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        return {**usage, "completion_tokens": usage["completion_tokens"] - reasoning}
    return usage


def flavor_json(headers: dict, payload: bytes) -> bytes:
    host = _host(headers)
    if host not in ("api.deepseek.com", "openrouter.ai", "api.x.ai"):
        return payload
    body = json.loads(payload)
    body["usage"] = flavor_usage(host, body["usage"])
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode()


def flavor_events(headers: dict, req: dict, p: fu.Plan, events: list[bytes]) -> list[bytes]:
    host = _host(headers)
    if host not in (
        "api.groq.com",
        "api.deepseek.com",
        "openrouter.ai",
        "api.x.ai",
        "api.mistral.ai",
    ):
        return events
    usage = flavor_usage(host, fu._openai_usage(p))
    chunks = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]  # all but [DONE]
    finishing = next(c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason"))
    has_usage_chunk = not chunks[-1]["choices"]
    if host == "api.groq.com":
        finishing["x_groq"] = {"id": "req_fakegroq", "usage": usage}
    elif host == "api.mistral.ai" and not has_usage_chunk:
        finishing["usage"] = usage
    elif host == "openrouter.ai" and not has_usage_chunk:
        chunks.append(
            {
                **{k: v for k, v in finishing.items() if k != "choices"},
                "choices": [],
                "usage": usage,
            }
        )
    if has_usage_chunk:
        chunks[-1]["usage"] = usage
    return [f"data: {fu._compact(c)}\n\n".encode() for c in chunks] + [events[-1]]


# --------------------------------------------------------------------------- dispatch


def route(method: str, path: str) -> tuple[str, str | None, bool] | None:
    """(api, model from the path, path asks for a stream) for the shapes served here."""
    if method != "POST":
        return None
    p = path.rstrip("/")
    if p in ("/api/chat", "/api/generate", "/api/embed"):
        return "ollama_" + p.rsplit("/", 1)[1], None, False
    if p in ("/v1/files", "/v1/messages/count_tokens", "/v1/responses/input_tokens"):
        return "not_llm", None, False
    p, _ = chat_alias(p)
    if p.endswith("/responses"):
        return "responses", None, False
    if p.endswith("/embeddings"):
        return "embeddings", None, False
    if p.endswith("/completions") and not p.endswith("/chat/completions"):
        return "completions", None, False
    if m := _MODEL_METHOD.search(p):
        verb = m.group(2)
        if verb in ("generateContent", "streamGenerateContent"):
            return "gemini", m.group(1), verb.startswith("stream")
        if verb in ("embedContent", "batchEmbedContents"):
            return "gemini_embed", m.group(1), False
        if verb == "countTokens":
            return "not_llm", m.group(1), False
    return None


async def handle(method: str, path: str, body: bytes, headers: dict, out: Any, scope: dict) -> bool:
    """Serve the request if it is one of the shapes here; False leaves it to fake_upstream."""
    from tests.support import fake_formats as ff

    found = route(method, path)
    if found is None:
        return False
    api, path_model, path_stream = found
    status = fu._int_header(headers, "x-fake-status", 200)
    query = scope.get("query_string", b"").decode("latin-1")
    sse = "alt=sse" in query
    if status != 200:
        payload = ff.error_payload(api, status, path_stream and not sse)
        await fu._respond(out, status, payload)
        return True
    try:
        req = json.loads(body or b"{}")
        if not isinstance(req, dict):
            raise ValueError("not an object")
    except ValueError:
        await fu._respond(out, 400, ff.error_payload(api, 400, False))
        return True
    if api == "not_llm":
        await fu._respond(out, 200, ff.not_llm_payload(path, req, body))
        return True
    p = plan(api, req, headers)
    if path_model:
        req = {**req, "model": path_model}
    stream = (
        path_stream
        or req.get("stream") is True
        or (api in ("ollama_chat", "ollama_generate") and req.get("stream") is not False)
    )
    if not stream:
        await _slow_start(headers)
        await fu._respond(out, 200, ff.payload(api, req, p))
        return True
    ctype, events = ff.stream(api, req, p, sse)
    await _stream(out, headers, ctype, events)
    return True


async def _slow_start(headers: dict) -> None:
    import asyncio

    ttft = fu._int_header(headers, "x-fake-ttft-ms") / 1000
    if ttft:
        await asyncio.sleep(ttft)


async def _stream(out: Any, headers: dict, ctype: bytes, events: list[bytes]) -> None:
    import asyncio

    delay = fu._int_header(headers, "x-fake-delay-ms") / 1000
    abort = headers.get("x-fake-abort-after")
    await out.start(200, [(b"content-type", ctype), (b"cache-control", b"no-cache")])
    await _slow_start(headers)
    for i, event in enumerate(events):
        if abort is not None and i >= int(abort):
            await asyncio.sleep(0.05)
            raise fu._AbortConnection
        if i and delay:
            await asyncio.sleep(delay)
        await out.event(event)
    await out.finish()
