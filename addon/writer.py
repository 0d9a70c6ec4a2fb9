"""The background writer: one named task that turns exchanges into stored traces.

Hooks only `submit()` (a non-blocking put on a bounded queue). The task takes up
to `batch_size` exchanges or whatever arrived within `flush_interval`, builds the
traces in a worker process (decoding, parsing, analysis are CPU work that must not
stall the proxy's loop) which also writes them in one `record_many` on its own
connection (sink.py); without workers, a thread builds and this task writes. When
the store fails, the batch goes to the durable spool and is replayed, in order,
when the store answers again. Nothing is dropped silently: every loss is counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor

from storage import BaseStore
from storage.trace import Trace

from .build import Built, build_batch
from .capture import Exchange
from .sink import WRITE_TIMEOUT, Outcome, build_and_record, quiet_close
from .spool import Spool

log = logging.getLogger("llmprof")
RETRY_MIN, RETRY_MAX = 0.5, 30.0
PRUNE_EVERY = 600.0  # seconds between retention rounds
COLLECT_NAP = 0.02  # seconds between drains of the queue while a batch fills
WORKER_WRITE_TRIES = 5  # failed worker writes in a row before this process writes instead
WORKER_WRITE_PAUSE = 600.0  # seconds before the workers are given the writes again


class Writer:
    def __init__(
        self,
        store_factory: Callable[[], BaseStore],
        spool: Spool,
        *,
        batch_size: int = 200,
        flush_interval: float = 0.5,
        queue_size: int = 10_000,
        retention_days: float = 0,
        body_retention_days: float = 0,
        stats_interval: float = 60.0,
        executor: Executor | Callable[[], Executor] | None = None,
        worker_db_url: str | None = None,
        concurrency: int = 1,
    ) -> None:
        self.store_factory = store_factory
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        # None is the stop sentinel.
        self.queue: asyncio.Queue[Exchange | None] = asyncio.Queue(maxsize=queue_size)
        self.store: BaseStore | None = None
        self.stats: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.retention_days = retention_days
        self.body_retention_days = body_retention_days
        self.stats_interval = stats_interval
        # Where analysis runs: an executor, a factory for one (made at the first batch, so
        # an idle proxy starts no process), or None for a thread of this process.
        self.executor: Executor | None = executor if isinstance(executor, Executor) else None
        self._make_executor = executor if callable(executor) else None
        # Workers write to this URL themselves (the same database as store_factory's);
        # None: traces come back here to be written.
        self.worker_db_url = worker_db_url
        self._worker_failures = 0
        self._worker_url: str | None = None  # set while the workers' writes are paused
        self._worker_retry_at = 0.0
        # Batches in flight at once: one per worker process, when the workers write.
        self.concurrency = max(1, concurrency)
        self._inflight: set[asyncio.Task] = set()
        self._next_prune = time.monotonic() + 5.0  # soon after start, then every PRUNE_EVERY
        self._next_stats = time.monotonic() + stats_interval
        self._last_stats: dict[str, int] = {}
        self._store_down_since: float | None = None
        self._retry_at = 0.0
        self._retry_delay = RETRY_MIN

    # ---- called from hooks (the event loop's hot path) -------------------------
    def submit(self, exchange: Exchange) -> None:
        try:
            self.queue.put_nowait(exchange)
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            if self.stats["dropped"] in (1, 10, 100) or self.stats["dropped"] % 1000 == 0:
                log.error(
                    "llmprof: writer queue full (%d): %d calls dropped so far, not recorded",
                    self.queue.maxsize,
                    self.stats["dropped"],
                )

    # ---- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="llmprof-writer")

    async def stop(self, timeout: float = 60.0) -> None:
        """Drain every queued exchange to the store (or the spool), then close.

        The task is asked to finish, not cancelled: a batch it holds is written.
        """
        self._stopping = True
        try:
            self.queue.put_nowait(None)  # wake a waiting _collect at once
        except asyncio.QueueFull:
            pass  # a full queue wakes it anyway
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except (TimeoutError, asyncio.CancelledError):
                log.error("llmprof: writer did not finish within %.0f s", timeout)
            self._task = None
        await self._settle()
        while not self.queue.empty():
            await self._process(self._take(self.batch_size))
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
        if self.spool and await self._ensure_store():
            await self._replay()
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def _run(self) -> None:
        # Open the store at once, so a bad database shows up at startup, not at
        # the first call, and calls spooled by an earlier run are written first.
        try:
            if await self._ensure_store() and self.spool:
                await self._replay()
        except Exception:  # noqa: BLE001
            log.exception("llmprof: could not replay the spool at startup")
        while not (self._stopping and self.queue.empty()):
            try:
                batch = await self._collect()
                if batch:
                    await self._dispatch(batch)
                elif self.spool and time.monotonic() >= self._retry_at:
                    await self._settle()
                    if await self._ensure_store():
                        await self._replay()
                elif time.monotonic() >= self._next_prune:
                    await self._prune()
                self._log_stats()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad batch
                self.stats["writer_errors"] += 1
                log.exception("llmprof: unexpected writer error (the batch was spooled)")

    async def _collect(self) -> list[Exchange]:
        """Wait for a first exchange, then gather more until the batch is full or
        `flush_interval` has passed. Gathering drains what is queued and naps between
        drains, rather than awaiting each exchange: an await per call costs the
        proxy's loop more than the call's share of a nap."""
        try:
            first = await asyncio.wait_for(self.queue.get(), timeout=1.0)
        except TimeoutError:
            return []
        batch = [first]
        deadline = time.monotonic() + self.flush_interval
        while not self._stopping:
            taken = self._take(self.batch_size - len(batch), keep_none=True)
            batch.extend(taken)
            remaining = deadline - time.monotonic()
            stop = any(ex is None for ex in taken)  # stop() woke us: write what we hold
            if stop or len(batch) >= self.batch_size or remaining <= 0:
                break
            await asyncio.sleep(min(remaining, COLLECT_NAP))
        return [ex for ex in batch if ex is not None]

    def _take(self, n: int, keep_none: bool = False) -> list[Exchange]:
        out = []
        while len(out) < n and not self.queue.empty():
            item = self.queue.get_nowait()
            if item is not None or keep_none:
                out.append(item)
        return out

    # ---- upkeep -----------------------------------------------------------------
    async def _prune(self) -> None:
        """Retention: delete old traces (and older bodies) in small batches, between
        writes, so no statement holds the database for long."""
        self._next_prune = time.monotonic() + PRUNE_EVERY
        jobs = [
            (days, bodies)
            for days, bodies in ((self.body_retention_days, True), (self.retention_days, False))
            if days > 0
        ]
        if not jobs or self.spool or not await self._ensure_store():
            return
        await self._settle()  # no batch of ours is writing while rows are deleted
        for days, bodies_only in jobs:
            cutoff, total = time.time() - days * 86400, 0
            while not self._stopping and self.queue.empty():
                try:
                    n = await self.store.prune(cutoff, bodies_only=bodies_only)
                except Exception as e:  # noqa: BLE001 - retention can wait for the next round
                    log.warning("llmprof: retention skipped this round: %s", e)
                    return
                total += n
                if n == 0:
                    break
                await asyncio.sleep(0.05)  # let readers and the proxy breathe
            if total:
                what = "request/response bodies" if bodies_only else "traces"
                log.info("llmprof: retention removed %d %s older than %g days", total, what, days)
                self.stats["pruned_bodies" if bodies_only else "pruned"] += total

    def _log_stats(self) -> None:
        """One info line a minute while anything changes: what was recorded, kept,
        lost, and the input problems seen."""
        if time.monotonic() < self._next_stats:
            return
        self._next_stats = time.monotonic() + self.stats_interval
        now = {**self.stats, "parse_problems": sum(self.problems.values())}
        if now == self._last_stats:
            return
        self._last_stats = now
        log.info(
            "llmprof: recorded=%d spooled=%d replayed=%d dropped=%d parse_problems=%d "
            "queue=%d spool_files=%d",
            now.get("recorded", 0),
            now.get("spooled", 0),
            now.get("replayed", 0),
            now.get("dropped", 0),
            now["parse_problems"],
            self.queue.qsize(),
            len(self.spool.files()),
        )

    # ---- the work ---------------------------------------------------------------
    async def _dispatch(self, batch: list[Exchange]) -> None:
        """Process `batch`, here or, with several workers writing, in a task of its own
        so the workers build and write side by side. Any trouble (spool, thread
        fallback) first lets the batches in flight finish: the spool keeps order."""
        parallel = (
            self.concurrency > 1
            and self.executor is not None
            and self.worker_db_url is not None
            and not self.spool
            and self._store_down_since is None
        )
        if not parallel:
            await self._settle()
            await self._process(batch)
            return
        while len(self._inflight) >= self.concurrency:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.get_running_loop().create_task(self._guarded(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _guarded(self, batch: list[Exchange]) -> None:
        try:
            await self._process(batch)
        except Exception:  # noqa: BLE001 - as in _run: outlive any one bad batch
            self.stats["writer_errors"] += 1
            log.exception("llmprof: unexpected writer error")

    async def _settle(self) -> None:
        if self._inflight:
            await asyncio.wait(set(self._inflight))

    async def _process(self, batch: list[Exchange]) -> None:
        outcome = await self._build(batch)
        traces = self._collect_built(batch, outcome.built)
        self.stats["recorded"] += outcome.written
        if outcome.written:
            self._worker_failures = 0
        if outcome.error is not None:
            # Only a failure while this process saw the store healthy counts against
            # the workers: batches that fail together in one outage count once.
            if self._store_down_since is None:
                self._worker_failures += 1
            self._store_failed(outcome.error)  # the worker could not write: keep them here
            if self._worker_failures >= WORKER_WRITE_TRIES and self.worker_db_url:
                # The workers' connections keep failing where this process's does not
                # (the spool replays in between): write from here for a while.
                log.error(
                    "llmprof: analysis workers cannot write to the database (%s); "
                    "writing from the proxy process for the next %.0f s",
                    outcome.error,
                    WORKER_WRITE_PAUSE,
                )
                self._worker_url, self.worker_db_url = self.worker_db_url, None
                self._worker_retry_at = time.monotonic() + WORKER_WRITE_PAUSE
                self._worker_failures = 0
        if traces:
            await self._write(traces)

    async def _build(self, batch: list[Exchange]) -> Outcome:
        """Build (and write) in a worker process when there is one, else build in a thread."""
        if self.executor is None and self._make_executor is not None:
            make, self._make_executor = self._make_executor, None
            try:
                self.executor = make()
            except (OSError, RuntimeError) as e:
                log.error("llmprof: cannot start analysis workers (%s); analysing in-process", e)
        if self._worker_url and time.monotonic() >= self._worker_retry_at:
            self.worker_db_url, self._worker_url = self._worker_url, None  # try them again
        if self.executor is not None:
            # While calls wait in the spool (or the store is failing), the worker only
            # builds: this task writes, after the spool, so the order holds.
            healthy = not self.spool and self._store_down_since is None
            url = self.worker_db_url if healthy else None
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self.executor, build_and_record, batch, url
                )
            except (BrokenExecutor, OSError, RuntimeError) as e:
                # The worker died (killed, out of memory): go on in a thread.
                log.error("llmprof: analysis worker failed (%s); analysing in-process", e)
                self.executor = None
        return Outcome(await asyncio.to_thread(build_batch, batch))

    def _collect_built(self, batch: list[Exchange], built: list[Built]) -> list[Trace]:
        traces = []
        for ex, (trace, problems, parse_failure, analysis_failure) in zip(
            batch, built, strict=True
        ):
            where = f"{ex.method} {ex.host}{ex.path}"
            if parse_failure:
                self.stats["parse_failures"] += 1
                log.error("llmprof: could not parse %s\n%s", where, parse_failure)
            if analysis_failure:
                self.stats["analysis_failures"] += 1
                log.error("llmprof: could not analyse %s\n%s", where, analysis_failure)
            if trace is not None:
                traces.append(trace)
            for problem in problems:
                self._problem(problem, ex)
        return traces

    def _problem(self, problem: str, ex: Exchange) -> None:
        kind = problem.split(":", 1)[0]
        self.problems[kind] += 1
        if self.problems[kind] == 1:  # once per kind; the periodic stats line counts the rest
            log.warning("llmprof: %s (%s %s%s)", problem, ex.method, ex.host, ex.path)

    async def _write(self, traces: list[Trace]) -> None:
        if not self.spool and await self._ensure_store():
            try:
                await asyncio.wait_for(self.store.record_many(traces), WRITE_TIMEOUT)
                self.stats["recorded"] += len(traces)
                return
            except Exception as e:  # noqa: BLE001 - store trouble: keep the batch on disk
                self._store_failed(e)
        self._to_spool(traces)
        if await self._ensure_store():
            await self._replay()

    def _to_spool(self, traces: list[Trace]) -> None:
        try:
            ok = self.spool.append(traces)
        except OSError as e:
            ok = False
            log.error("llmprof: cannot write the spool at %s: %s", self.spool.folder, e)
        if ok:
            self.stats["spooled"] += len(traces)
        else:
            self.stats["dropped"] += len(traces)
            log.error(
                "llmprof: store unavailable and spool full or unwritable: %d calls dropped "
                "(%d so far)",
                len(traces),
                self.stats["dropped"],
            )

    async def _replay(self) -> None:
        for path in self.spool.files():
            traces = await asyncio.to_thread(Spool.read, path)
            try:
                if traces:
                    await asyncio.wait_for(self.store.record_many(traces), WRITE_TIMEOUT)
            except Exception as e:  # noqa: BLE001
                self._store_failed(e)
                return
            Spool.remove(path)
            self.stats["replayed"] += len(traces)
            self.stats["recorded"] += len(traces)
        if self._store_down_since is not None:
            log.warning(
                "llmprof: store is back after %.0f s; spooled calls written",
                time.monotonic() - self._store_down_since,
            )
            self._store_down_since = None

    async def _ensure_store(self) -> bool:
        if self.store is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        store = self.store_factory()
        try:
            await asyncio.wait_for(store.open(), WRITE_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            await quiet_close(store)
            self._store_failed(e)
            return False
        self.store = store
        self._retry_delay = RETRY_MIN
        return True

    def _store_failed(self, error: BaseException | str) -> None:
        if self._store_down_since is None:
            self._store_down_since = time.monotonic()
            log.error(
                "llmprof: store unavailable, spooling calls to %s: %s", self.spool.folder, error
            )
        if self.store is not None:
            store, self.store = self.store, None
            asyncio.get_running_loop().create_task(quiet_close(store))
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
