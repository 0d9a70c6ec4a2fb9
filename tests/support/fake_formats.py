"""Wire formats of the shapes in tests/support/fake_providers.py: Responses, Gemini, Ollama,
embeddings and legacy completions (bodies, stream events, errors, usage objects)."""

from __future__ import annotations

import json
from typing import Any

from tests.support import fake_upstream as fu

CREATED_AT = "2025-01-01T00:00:00.000000Z"


def _pretty(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def _ids(p: fu.Plan) -> dict[str, str]:
    d = p.digest
    return {"resp": f"resp_fake{d[:24]}", "msg": f"msg_fake{d[24:40]}", "fc": f"fc_fake{d[40:56]}"}


def _nonzero(**counts: int) -> dict[str, int]:
    """proto3 JSON: zero counts are left out."""
    return {k: v for k, v in counts.items() if v}


def wire_usage(api: str, p: fu.Plan) -> Any:
    out = len(p.pieces)
    if api == "responses":
        prompt, completion = p.base_tokens + p.cached, out + p.reasoning
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": p.cached},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": p.reasoning},
            "total_tokens": prompt + completion,
        }
    if api == "gemini":
        prompt = p.base_tokens + p.cached
        return _nonzero(
            promptTokenCount=prompt,
            candidatesTokenCount=out,
            totalTokenCount=prompt + out + p.reasoning + p.cache_write,
            cachedContentTokenCount=p.cached,
            thoughtsTokenCount=p.reasoning,
            toolUsePromptTokenCount=p.cache_write,
        ) | {"promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
    if api in ("ollama_chat", "ollama_generate"):
        return {"prompt_eval_count": p.base_tokens, "eval_count": out}
    if api == "ollama_embed":
        return {"prompt_eval_count": p.base_tokens}
    if api == "embeddings":
        return {"prompt_tokens": p.base_tokens, "total_tokens": p.base_tokens}
    if api == "completions":
        return {
            "prompt_tokens": p.base_tokens,
            "completion_tokens": out,
            "total_tokens": p.base_tokens + out,
        }
    return None  # gemini_embed: the Developer API reports no usage


def error_payload(api: str, status: int, array: bool) -> bytes:
    if api.startswith("ollama"):
        return fu._compact({"error": f'model "x" failed with {status} (fake upstream)'}).encode()
    if api.startswith("gemini") or (api == "not_llm" and array):
        from tests.support.fake_providers import GOOGLE_STATUS

        err = {
            "error": {
                "code": status,
                "message": "Resource has been exhausted (fake upstream).",
                "status": GOOGLE_STATUS.get(status, "UNKNOWN"),
            }
        }
        return _pretty([err] if array else err)
    return fu.error_body("openai", status)


def not_llm_payload(path: str, req: dict, body: bytes) -> bytes:
    if path.endswith("/v1/files"):
        return _pretty(
            {"id": "file-fake1", "object": "file", "bytes": len(body), "purpose": "batch"}
        )
    if path.endswith(":countTokens"):
        return _pretty({"totalTokens": 8 + len(fu._canonical(req)) // 4})
    if path.endswith("/input_tokens"):
        return _pretty({"object": "response.input_tokens", "input_tokens": 8})
    return fu._compact({"input_tokens": 8 + len(fu._canonical(req)) // 4}).encode()


# --------------------------------------------------------------------------- Responses


def _response(req: dict, p: fu.Plan, done: bool) -> dict:
    ids = _ids(p)
    if p.tool:
        item = {
            "type": "function_call",
            "id": ids["fc"],
            "call_id": "call_" + ids["fc"][3:],
            "name": p.tool,
            "arguments": "".join(p.pieces),
            "status": "completed",
        }
    else:
        text = {"type": "output_text", "annotations": [], "text": p.text}
        item = {"type": "message", "id": ids["msg"], "status": "completed", "role": "assistant"}
        item["content"] = [text]
    status = "incomplete" if p.truncated else "completed"
    return {
        "id": ids["resp"],
        "object": "response",
        "created_at": fu.CREATED,
        "status": status if done else "in_progress",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and p.truncated else None,
        "instructions": req.get("instructions"),
        "model": fu._openai_model(req),
        "output": [item] if done else [],
        "previous_response_id": req.get("previous_response_id"),
        "tools": req.get("tools", []),
        "usage": wire_usage("responses", p) if done else None,
        "store": req.get("store", True),
    }


def _responses_events(req: dict, p: fu.Plan) -> list[bytes]:
    seq = iter(range(10_000))

    def ev(kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(seq), **data}
        return f"event: {kind}\ndata: {fu._compact(payload)}\n\n".encode()

    final = _response(req, p, True)
    item = final["output"][0]
    events = [
        ev("response.created", response=_response(req, p, False)),
        ev("response.in_progress", response=_response(req, p, False)),
    ]
    if p.tool:
        events.append(
            ev("response.output_item.added", output_index=0, item={**item, "arguments": ""})
        )
        for frag in p.pieces:
            events.append(
                ev(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=0,
                    delta=frag,
                )
            )
    else:
        events.append(
            ev("response.output_item.added", output_index=0, item={**item, "content": []})
        )
        for piece in p.pieces:
            events.append(
                ev(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=0,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
            )
    events.append(ev("response.output_item.done", output_index=0, item=item))
    terminal = "response.incomplete" if p.truncated else "response.completed"
    events.append(ev(terminal, response=final))
    return events


# --------------------------------------------------------------------------- Gemini


def _gemini_chunk(req: dict, p: fu.Plan, parts: list, finish: bool, produced: int) -> dict:
    usage = wire_usage("gemini", p)
    if not finish:  # a running count, as the real stream sends it
        usage = {k: v for k, v in usage.items() if k in ("promptTokenCount", "thoughtsTokenCount")}
        usage["candidatesTokenCount"] = produced
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = "MAX_TOKENS" if p.truncated else "STOP"
    return {
        "candidates": [cand],
        "usageMetadata": usage,
        "modelVersion": req["model"],
        "responseId": "fake" + p.digest[:20],
    }


def _gemini_chunks(req: dict, p: fu.Plan) -> list[dict]:
    if p.tool:
        call = {"functionCall": {"name": p.tool, "args": json.loads("".join(p.pieces))}}
        return [_gemini_chunk(req, p, [call], True, len(p.pieces))]
    last = len(p.pieces) - 1
    return [
        _gemini_chunk(req, p, [{"text": piece}], i == last, i + 1)
        for i, piece in enumerate(p.pieces)
    ]


def _gemini_body(req: dict, p: fu.Plan) -> dict:
    chunks = _gemini_chunks(req, p)
    body = chunks[-1]
    if not p.tool:
        body["candidates"][0]["content"]["parts"] = [{"text": p.text}]
    return body


# --------------------------------------------------------------------------- Ollama


def _ollama_line(req: dict, api: str, content: str, **extra: Any) -> dict:
    obj: dict[str, Any] = {"model": req.get("model", "llama3.2"), "created_at": CREATED_AT}
    if api == "ollama_chat":
        obj["message"] = {"role": "assistant", "content": content}
    else:
        obj["response"] = content
    return obj | extra


def _ollama_final(req: dict, api: str, p: fu.Plan, content: str) -> dict:
    final = _ollama_line(
        req, api, content, done=True, done_reason="length" if p.truncated else "stop"
    )
    final |= OLLAMA_COUNTS(p, api)
    if api == "ollama_generate":
        final["context"] = list(range(p.base_tokens + len(p.pieces)))
    return final


def OLLAMA_COUNTS(p: fu.Plan, api: str) -> dict:  # noqa: N802 - reads like the constant it is
    from tests.support.fake_providers import OLLAMA_TIMES

    return {**OLLAMA_TIMES, **wire_usage(api, p), "eval_duration": 2_000_000}


def _ollama_tool(req: dict, p: fu.Plan) -> dict:
    call = {"function": {"name": p.tool, "arguments": json.loads("".join(p.pieces))}}
    return _ollama_line(req, "ollama_chat", "", done=False) | {
        "message": {"role": "assistant", "content": "", "tool_calls": [call]}
    }


# --------------------------------------------------------------------------- entry points


def payload(api: str, req: dict, p: fu.Plan) -> bytes:
    if api == "responses":
        return _pretty(_response(req, p, True))
    if api == "gemini":
        return _pretty(_gemini_body(req, p))
    if api == "gemini_embed":
        n = len(req.get("requests") or []) if "requests" in req else None
        vec = {"values": [round(0.01 * i, 2) for i in range(8)]}
        return _pretty({"embeddings": [vec] * n} if n is not None else {"embedding": vec})
    if api in ("ollama_chat", "ollama_generate"):
        if p.tool and api == "ollama_chat":
            body = _ollama_final(req, api, p, "")
            body["message"]["tool_calls"] = _ollama_tool(req, p)["message"]["tool_calls"]
            return fu._compact(body).encode()
        return fu._compact(_ollama_final(req, api, p, p.text)).encode()
    if api == "ollama_embed":
        inputs = req.get("input") if isinstance(req.get("input"), list) else [req.get("input")]
        vectors = [[0.5, -0.25, 0.125] for _ in inputs]
        body = {"model": req.get("model"), "embeddings": vectors, **OLLAMA_COUNTS(p, api)}
        return fu._compact(body).encode()
    if api == "embeddings":
        inputs = req.get("input") if isinstance(req.get("input"), list) else [req.get("input")]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.0023, -0.0091, 0.0157, 0.0042]}
            for i in range(len(inputs))
        ]
        body = {"object": "list", "data": data, "model": req.get("model")}
        return _pretty(body | {"usage": wire_usage(api, p)})
    # completions
    body = {
        "id": "cmpl-fake" + p.digest[:20],
        "object": "text_completion",
        "created": fu.CREATED,
        "model": req.get("model"),
        "choices": [
            {
                "text": p.text,
                "index": 0,
                "logprobs": None,
                "finish_reason": "length" if p.truncated else "stop",
            }
        ],
        "usage": wire_usage(api, p),
    }
    return _pretty(body)


def stream(api: str, req: dict, p: fu.Plan, sse: bool) -> tuple[bytes, list[bytes]]:
    """(content type, the pieces to write one by one)."""
    if api == "responses":
        return b"text/event-stream; charset=utf-8", _responses_events(req, p)
    if api == "gemini":
        chunks = _gemini_chunks(req, p)
        if sse:
            return b"text/event-stream", [
                f"data: {fu._compact(c)}\r\n\r\n".encode() for c in chunks
            ]
        pretty = [json.dumps(c, indent=2, ensure_ascii=False) for c in chunks]
        pieces = ["[" + pretty[0]] + [",\r\n" + c for c in pretty[1:]]
        pieces[-1] += "]"
        return b"application/json; charset=UTF-8", [x.encode() for x in pieces]
    if api in ("ollama_chat", "ollama_generate"):
        lines = []
        if p.tool and api == "ollama_chat":
            lines.append(_ollama_tool(req, p))
        else:
            lines += [_ollama_line(req, api, piece, done=False) for piece in p.pieces]
        lines.append(_ollama_final(req, api, p, ""))
        return b"application/x-ndjson", [fu._compact(x).encode() + b"\n" for x in lines]
    # completions
    head = {"id": "cmpl-fake" + p.digest[:20], "object": "text_completion", "created": fu.CREATED}
    head["model"] = req.get("model")
    include = bool((req.get("stream_options") or {}).get("include_usage"))
    chunks = []
    for i, piece in enumerate(p.pieces):
        last = i == len(p.pieces) - 1
        finish = ("length" if p.truncated else "stop") if last else None
        choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}
        chunks.append(head | {"choices": [choice]})
    if include:
        chunks.append(head | {"choices": [], "usage": wire_usage(api, p)})
    return b"text/event-stream", [f"data: {fu._compact(c)}\n\n".encode() for c in chunks] + [
        b"data: [DONE]\n\n"
    ]
