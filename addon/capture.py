"""Per-flow state on the proxy's hot path, and the snapshot handed to the writer.

Everything here runs inside mitmproxy's event loop for every chunk of every LLM
response, so it does the least it can: the tee keeps references to the chunks and
a timestamp each, and forwards the same bytes object untouched. Parsing,
decoding and pricing happen later, in the writer, off the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy import http
from mitmproxy.connection import ConnectionState

from storage.trace import new_uid

# Request headers worth keeping. An allowlist, so no credential (authorization,
# x-api-key, api-key, x-goog-api-key, cookie, proxy-authorization, ...) can ever
# reach the database, whatever a client invents next.
REQUEST_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "anthropic-version",
        "anthropic-beta",
        "openai-beta",
        "x-stainless-lang",
        "x-stainless-package-version",
        "x-stainless-runtime",
        "x-stainless-runtime-version",
        "x-stainless-retry-count",
        "x-llmprof-session",
        # run ids agent harnesses send (identifiers, not credentials)
        "session_id",
        "conversation_id",
        "originator",
        "x-opencode-session",
    }
)
SESSION_HEADER = "x-llmprof-session"


class Tee:
    """The `flow.response.stream` callable: forwards each chunk as it arrives and
    keeps it (up to `limit` bytes) for the writer.

    With `strip` (`inject.UsageStripper`, only when llmprof itself asked for a
    usage chunk) the client gets the stream minus what llmprof added; the kept
    chunks are always the upstream's own bytes.
    """

    __slots__ = ("chunks", "times", "size", "limit", "overflow", "ended", "strip")

    def __init__(self, limit: int, strip: Callable[[bytes], bytes] | None = None) -> None:
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        self.size = 0
        self.limit = limit
        self.overflow = False
        self.ended: float | None = None  # set when mitmproxy signals a clean end (b"")
        self.strip = strip

    def __call__(self, data: bytes) -> bytes:
        try:
            if data:
                self.size += len(data)
                if self.size <= self.limit:
                    self.chunks.append(data)
                    self.times.append(time.time())
                else:
                    self.overflow = True
            else:
                self.ended = time.time()
        except Exception:  # noqa: BLE001 - the client's bytes must flow whatever happens here
            pass
        if self.strip is not None:
            return self.strip(data)
        return data


@dataclass(slots=True)
class Exchange:
    """One finished LLM flow, as plain data: what the writer turns into a trace."""

    uid: str
    ts: float  # request start, epoch seconds
    method: str
    host: str
    port: int
    path: str  # without the query string (which may hold `?key=`)
    request_headers: dict[str, str]
    request_body: bytes | None
    request_encoding: str | None
    session_hint: str | None
    status: int | None = None
    content_type: str | None = None
    response_encoding: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)
    teed: bool = False  # the body went through the Tee (always, for recorded flows)
    end_ts: float | None = None
    overflow: bool = False
    error: str | None = None  # the proxy's error message when the flow failed
    client_abort: bool = False


def _client_gone(flow: http.HTTPFlow) -> bool:
    """Did the client hang up (rather than the upstream fail)?

    mitmproxy's message does not always say ("peer closed connection" on HTTP/2),
    but it marks the client's connection unreadable before it reports the close;
    when the upstream fails instead, the client is still connected at this point.
    (The upstream connection tells nothing: mitmproxy closes it itself once the
    client has gone.)
    """
    if "client disconnected" in flow.error.msg.lower():
        return True
    return not (flow.client_conn.state & ConnectionState.CAN_READ)


def start(flow: http.HTTPFlow) -> str | None:
    """Take the run hint off the request (it is llmprof's, not the provider's)."""
    hint = flow.request.headers.get(SESSION_HEADER)
    if hint is not None:
        del flow.request.headers[SESSION_HEADER]
    return hint


def snapshot(
    flow: http.HTTPFlow,
    tee: Tee | None,
    session_hint: str | None,
    original_body: bytes | None = None,
    host: str | None = None,
) -> Exchange:
    """Freeze a finished (or failed) flow into an Exchange. Pure: no I/O, no parsing.

    `original_body` is the client's body when llmprof changed the one sent upstream;
    `host` the request's `pretty_host` when the caller has it already.
    """
    req = flow.request
    # Headers.fields, not .items(): items() is quadratic in the header count.
    headers = {}
    for raw_name, raw_value in req.headers.fields:
        name = raw_name.decode("latin-1").lower()
        if name in REQUEST_HEADERS and name not in headers:
            headers[name] = raw_value.decode("utf-8", "replace")
    ex = Exchange(
        uid=new_uid(),
        ts=req.timestamp_start,
        method=req.method,
        host=host or req.pretty_host,
        port=req.port,
        path=req.path.split("?", 1)[0],
        request_headers=headers,
        request_body=original_body if original_body is not None else req.raw_content,
        request_encoding=req.headers.get("content-encoding"),
        session_hint=session_hint,
    )
    resp = flow.response
    if resp is not None:
        ex.status = resp.status_code
        ex.content_type = resp.headers.get("content-type")
        ex.response_encoding = resp.headers.get("content-encoding")
        if tee is not None:
            ex.chunks, ex.chunk_times, ex.overflow = tee.chunks, tee.times, tee.overflow
            ex.teed = True
            ex.end_ts = tee.ended or resp.timestamp_end
        elif resp.raw_content is not None:
            ex.chunks, ex.chunk_times = [resp.raw_content], [resp.timestamp_end or time.time()]
            ex.end_ts = resp.timestamp_end
    if flow.error is not None:
        ex.error = flow.error.msg
        ex.client_abort = _client_gone(flow)
        ex.end_ts = flow.error.timestamp
    if ex.end_ts is None:
        ex.end_ts = time.time()
    return ex
