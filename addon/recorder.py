"""The mitmproxy addon: options, and hooks that do almost nothing.

- `tls_clienthello` leaves every non-LLM connection alone: its TLS passes through
  untouched, never decrypted.
- `responseheaders` tees every recorded LLM response, so each chunk reaches the
  client the moment it arrives (SSE, chunked JSON, compressed or not).
- `response` / `error` freeze the flow into an Exchange and enqueue it. No hook
  awaits anything: the background writer does the rest.

`load`, `configure`, `running` and `done` are sync on purpose: mitmproxy calls
them synchronously on a script hot-reload, and `done` returns the drain task so a
shutdown awaits it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from mitmproxy import ctx, exceptions, http, tls
from mitmproxy.flow import Error

import storage
from storage import StoreError

from . import capture, inject, providers
from .analysis import pricing
from .build import worker_init
from .hosts import HostMatcher
from .spool import Spool
from .writer import Writer

log = logging.getLogger("llmprof")
FLOW_KEY = "llmprof"


class LLMProf:
    def __init__(self) -> None:
        self.hosts = HostMatcher()
        self.writer: Writer | None = None
        self.db_url: str = ""
        # Flows between request and response/error: at shutdown, what they saw so far
        # is recorded rather than lost.
        self.inflight: dict[str, http.HTTPFlow] = {}

    # ---- options ----------------------------------------------------------------
    def load(self, loader) -> None:
        loader.add_option(
            "llmprof_db_url",
            str,
            "",
            "Where traces go: sqlite:///path.db or postgresql://... "
            "Empty: $LLMPROF_DB_URL, else $LLMPROF_HOME/llmprof.db (~/.llmprof by default).",
        )
        loader.add_option(
            "llmprof_hosts",
            Sequence[str],
            [],
            "Extra LLM hosts to intercept and record, besides the built-in providers: "
            "a host name, *.domain, or host:port. Repeat the option for several.",
        )
        loader.add_option("llmprof_batch", int, 200, "Traces written per database batch.")
        loader.add_option(
            "llmprof_flush_ms", int, 500, "Longest wait before a partial batch is written (ms)."
        )
        loader.add_option(
            "llmprof_queue",
            int,
            10_000,
            "Calls waiting to be written before new ones are dropped (and counted).",
        )
        loader.add_option(
            "llmprof_max_body_mb",
            int,
            64,
            "Largest response body kept for parsing (MB); bigger ones pass through uncaptured.",
        )
        loader.add_option(
            "llmprof_stats_s",
            int,
            60,
            "Seconds between the one-line stats log (recorded, spooled, dropped, problems).",
        )
        loader.add_option(
            "llmprof_workers",
            int,
            1,
            "Worker processes that analyse recorded calls and write them to the database, "
            "off the proxy's interpreter (0: a thread inside the proxy analyses, the proxy "
            "writes).",
        )
        loader.add_option(
            "llmprof_inject_usage",
            bool,
            False,
            "Ask OpenAI-style chat/completions streams for their usage "
            "(stream_options.include_usage) when the client did not, and take the extra "
            "usage chunk back out of what the client receives. Off: such streams are "
            "recorded with estimated tokens.",
        )
        loader.add_option(
            "llmprof_spool_mb",
            int,
            512,
            "Disk budget (MB) for calls kept while the store is unavailable.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "llmprof_hosts" in updated:
            try:
                self.hosts = HostMatcher(opts.llmprof_hosts)
            except ValueError as e:
                raise exceptions.OptionsError(f"llmprof_hosts: {e}") from e
        for name in (
            "llmprof_batch",
            "llmprof_flush_ms",
            "llmprof_queue",
            "llmprof_max_body_mb",
            "llmprof_spool_mb",
            "llmprof_stats_s",
        ):
            if name in updated and getattr(opts, name) <= 0:
                raise exceptions.OptionsError(f"{name} must be a positive number")
        if "llmprof_workers" in updated and not 0 <= opts.llmprof_workers <= 64:
            raise exceptions.OptionsError("llmprof_workers must be between 0 and 64")
        if "llmprof_db_url" in updated and os.environ.get(pricing.OVERRIDE_ENV):
            try:  # a broken price file is a startup error, not a stream of unpriced calls
                pricing.load_overrides(os.environ[pricing.OVERRIDE_ENV])
            except (OSError, ValueError) as e:
                raise exceptions.OptionsError(f"{pricing.OVERRIDE_ENV}: {e}") from e
        if "llmprof_db_url" in updated:
            for name in ("LLMPROF_RETENTION_DAYS", "LLMPROF_BODY_RETENTION_DAYS"):
                try:
                    _env_days(name)
                except ValueError as e:
                    raise exceptions.OptionsError(str(e)) from e
            try:
                self.db_url = storage.resolve_db_url(opts.llmprof_db_url or None)
                storage.make_store(self.db_url)  # validates the URL; connects later
            except (StoreError, RuntimeError) as e:
                raise exceptions.OptionsError(f"llmprof_db_url: {e}") from e

    def running(self) -> None:
        if self.writer is not None:
            return
        opts = ctx.options
        if not self.db_url:
            self.db_url = storage.resolve_db_url(opts.llmprof_db_url or None)
        url = self.db_url
        self.writer = Writer(
            lambda: storage.make_store(url),
            Spool(storage.llmprof_home() / "spool", opts.llmprof_spool_mb * 1024 * 1024),
            batch_size=opts.llmprof_batch,
            flush_interval=opts.llmprof_flush_ms / 1000,
            queue_size=opts.llmprof_queue,
            retention_days=_env_days("LLMPROF_RETENTION_DAYS"),
            body_retention_days=_env_days("LLMPROF_BODY_RETENTION_DAYS"),
            stats_interval=opts.llmprof_stats_s,
            executor=partial(_workers, opts.llmprof_workers) if opts.llmprof_workers else None,
            # An in-memory SQLite database lives in one process: the proxy writes it.
            worker_db_url=None if storage.parse_db_url(url) == ("sqlite", ":memory:") else url,
            concurrency=opts.llmprof_workers,
        )
        self.writer.start()
        log.info("llmprof: recording LLM calls to %s", _redact(url))

    def done(self) -> asyncio.Task | None:
        for flow in list(self.inflight.values()):
            if flow.error is None:
                flow.error = Error("llmprof: the proxy shut down before the call finished")
            self._finish(flow)
        writer, self.writer = self.writer, None
        if writer is None:
            return None
        return asyncio.get_running_loop().create_task(writer.stop(), name="llmprof-drain")

    # ---- connection and flow hooks ---------------------------------------------
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        host = data.client_hello.sni
        port = None
        if data.context.server.address:
            addr_host, port = data.context.server.address
            host = host or addr_host
        if not self.hosts(host, port):
            data.ignore_connection = True

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        host = req.pretty_host  # parses the Host header each time: once per flow
        if not self.hosts(host, req.port) and not self.hosts(req.host, req.port):
            return
        shape = providers.detect(req.method, host, req.path.split("?", 1)[0])
        if shape is None:
            return
        # [session hint, tee, the client's body if llmprof changed it, (provider, api), host]
        state = [capture.start(flow), None, None, (shape.provider, shape.api), host]
        flow.metadata[FLOW_KEY] = state
        self.inflight[flow.id] = flow

    def request(self, flow: http.HTTPFlow) -> None:
        state = flow.metadata.get(FLOW_KEY)
        if state is not None and ctx.options.llmprof_inject_usage:
            state[2] = inject.inject_usage(flow, *state[3])

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = flow.metadata.get(FLOW_KEY)
        if state is not None and self.writer is not None:
            strip = None
            if state[2] is not None and inject.can_strip(flow.response):
                strip = inject.UsageStripper()
            state[1] = flow.response.stream = capture.Tee(
                ctx.options.llmprof_max_body_mb * 1024 * 1024, strip
            )
        elif state is None:
            # Not recorded (GET /v1/models, uploads, gRPC, ...): pass it on as it
            # arrives rather than buffering it whole.
            flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def _finish(self, flow: http.HTTPFlow) -> None:
        state = flow.metadata.pop(FLOW_KEY, None)
        self.inflight.pop(flow.id, None)
        if state is None or self.writer is None:
            return
        try:
            self.writer.submit(capture.snapshot(flow, state[1], state[0], state[2], state[4]))
        except Exception:  # noqa: BLE001 - recording must never break the client's call
            # Host and path only: the query string may carry `?key=`.
            req = flow.request
            log.exception(
                "llmprof: could not capture %s%s", req.pretty_host, req.path.split("?")[0]
            )


def _workers(n: int) -> ProcessPoolExecutor | None:
    """The analysis worker processes. Spawned, not forked: the proxy has threads."""
    if n <= 0:
        return None
    return ProcessPoolExecutor(
        max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=worker_init
    )


def _env_days(name: str) -> float:
    """A retention period from the environment: days (0 or unset = keep forever)."""
    raw = os.environ.get(name, "").strip()
    try:
        days = float(raw) if raw else 0.0
    except ValueError:
        days = -1.0
    if days < 0 or days != days:
        raise ValueError(f"{name}={raw!r}: give a number of days (0 keeps everything)")
    return days


def _redact(url: str) -> str:
    """A database URL fit for a log line: no password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
