"""mitmproxy.test flows driven through llmprof's hot-path pieces (capture.start, Tee,
capture.snapshot) and then extract.build_trace: the unit-level path of one call."""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import http
from mitmproxy.flow import Error
from mitmproxy.test import tflow, tutils

from addon import capture
from addon.capture import Exchange
from addon.extract import build_trace

T0 = 1_700_000_000.0


def make_flow(
    host: str,
    path: str,
    body: Any,
    *,
    port: int = 443,
    headers: dict | None = None,
    status: int = 200,
    ctype: str = "application/json",
    encoding: str | None = None,
    method: str = "POST",
) -> http.HTTPFlow:
    """`path` may include a query string (it is dropped before anything is stored)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = tutils.treq(
        host=host,
        port=port,
        method=method.encode(),
        path=path.encode(),
        headers=http.Headers(content_type="application/json", **(headers or {})),
        content=content,
    )
    req.timestamp_start = T0
    resp_headers = http.Headers(content_type=ctype)
    if encoding:
        resp_headers["content-encoding"] = encoding
    resp = tutils.tresp(status_code=status, headers=resp_headers, content=b"")
    return tflow.tflow(req=req, resp=resp)


def run(flow, chunks, *, times=None, end=True, error=None, estimator="default"):
    """Feed `chunks` through a Tee like mitmproxy does; return (exchange, trace, problems).

    `times` are the arrival times of the chunks (default T0 + 0.1 * (i + 1)).
    """
    hint = capture.start(flow)
    tee = capture.Tee(limit=1 << 24)
    for chunk in chunks:
        assert tee(chunk) is chunk
    tee.times = list(times or [T0 + 0.1 * (i + 1) for i in range(len(chunks))])
    if end:
        tee(b"")
    if error:
        flow.error = Error(error)
    ex = capture.snapshot(flow, tee, hint)
    if estimator == "default":
        trace, problems = build_trace(ex)
    else:
        trace, problems = build_trace(ex, estimator=estimator)
    return ex, trace, problems


def sse(*events: dict, named: bool = False, crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    out = ""
    for ev in events:
        if named:
            out += f"event: {ev['type']}{nl}"
        out += f"data: {json.dumps(ev)}{nl}{nl}"
    return out.encode()


def split_every(raw: bytes, n: int) -> list[bytes]:
    return [raw[i : i + n] for i in range(0, len(raw), n)]


def json_exchange(i: int, session: str | None = None, uid: str | None = None) -> Exchange:
    """A finished OpenAI chat call as the writer receives it: a JSON answer with usage
    (100 + i prompt tokens, 7 completion tokens), no messages."""
    body = {"model": "gpt-4o", "usage": {"prompt_tokens": 100 + i, "completion_tokens": 7}}
    return Exchange(
        uid=uid or f"uid-{i:04d}", ts=T0 + i, method="POST", host="api.openai.com",
        port=443, path="/v1/chat/completions", request_headers={},
        request_body=json.dumps({"model": "gpt-4o", "messages": []}).encode(),
        request_encoding=None, session_hint=session, status=200,
        content_type="application/json", chunks=[json.dumps(body).encode()],
        chunk_times=[T0 + 0.5 + i], end_ts=T0 + 1.0 + i,
    )  # fmt: skip
