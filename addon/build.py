"""Exchange -> stored-ready Trace, the CPU work of the writer, as one picklable function.

`build_batch` decodes, parses, analyses (attribution, pricing, findings, run
fingerprints) and JSON-encodes each exchange. The writer runs it in a worker
process by default (`llmprof_workers`), so this work never competes with the
proxy's event loop for the interpreter lock; or in a thread (`llmprof_workers=0`).
It never raises: failures come back as text for the writer to count and log.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback

from storage.rows import prepare
from storage.trace import Trace

from .analysis.profile import profile
from .capture import Exchange
from .extract import build_trace

WORKER_NICE = 10  # added to the workers' nice value (lower CPU priority than the proxy)

# (trace or None, problems, parse failure traceback, analysis failure traceback)
Built = tuple[Trace | None, list[str], str | None, str | None]


def build_one(ex: Exchange) -> Built:
    try:
        trace, problems = build_trace(ex)
    except Exception:  # noqa: BLE001 - a parser bug must not lose the batch
        return None, [], traceback.format_exc(), None
    analysis_failure = None
    if trace is not None:
        try:
            problems += profile(trace)
        except Exception:  # noqa: BLE001 - an analysis bug must not lose the call
            analysis_failure = traceback.format_exc()
        try:
            prepare(trace, _raw_json(ex))  # JSON encoding here too, not on the proxy's loop
        except Exception:  # noqa: BLE001 - the store encodes again if this failed
            trace.encoded = None
    return trace, problems, None, analysis_failure


def _raw_json(ex: Exchange) -> bytes | None:
    """The request body as stored bytes when it is plain UTF-8 JSON as sent (not
    compressed, no byte-order mark, not UTF-16/32: json.loads accepts those too)."""
    body = ex.request_body
    if not body or (ex.request_encoding or "identity").lower() != "identity":
        return None
    head = body[:64].lstrip()
    return body if head[:1] in (b"{", b"[") and b"\x00" not in body[:8] else None


def build_batch(batch: list[Exchange]) -> list[Built]:
    return [build_one(ex) for ex in batch]


def _warm() -> None:
    """Load the tokenizers and the price tables now, so the first batch a worker
    gets (and the calls waiting on it) does not pay for it."""
    from .analysis import pricing, tokens

    try:
        for name in ("o200k_base", "cl100k_base"):
            tokens.encoding_for("openai", "gpt-4o" if name == "o200k_base" else "gpt-4")
        pricing.price(
            "openai",
            "gpt-4o-mini",
            prompt_tokens=1,
            completion_tokens=1,
            cached_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
        )
    except Exception:  # noqa: BLE001 - only a head start; the first call loads what it needs
        pass


def worker_init() -> None:
    """Runs first in each worker process. Ctrl-C in a terminal reaches the whole
    process group: the worker ignores it and lets the proxy drain and shut it down.
    And it exits when the proxy is gone: a worker blocked on its queue does not
    notice a parent killed with SIGKILL, and must not linger."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        # Recording is background work: when the cores are busy, the proxy (and the
        # clients and servers on this machine) go first; the queue absorbs the lag.
        os.nice(WORKER_NICE)
    except OSError:
        pass
    _warm()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="llmprof-parent-watch", daemon=True).start()
