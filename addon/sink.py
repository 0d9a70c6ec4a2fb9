"""The worker process's side of the writer: build a batch and write it, in one call.

`build_and_record` runs in an analysis worker process (`llmprof_workers`). After
building the traces (build.py) it writes them through the worker's own store
connection, so neither the traces nor the database driver's Python ever touch
the proxy's interpreter: the proxy sends exchanges and gets back a few counters
and problem strings.

When the write fails the traces go back to the proxy, whose writer keeps them
(its own store, else the durable spool), exactly as if it had built them itself.
A write that committed but whose answer was lost (the worker died) is harmless:
`record_many` skips uids it already holds.
"""

from __future__ import annotations

import asyncio
import multiprocessing.util
import time
from dataclasses import dataclass

from storage import BaseStore, make_store
from storage.trace import Trace

from .build import Built, build_batch
from .capture import Exchange

WRITE_TIMEOUT = 30.0  # seconds a store may take to open or to write a batch
CLOSE_TIMEOUT = 5.0


@dataclass
class Outcome:
    """What a worker sends back for one batch."""

    built: list[Built]  # the traces are None where the worker stored them
    written: int = 0  # traces the worker stored
    error: str | None = None  # why the worker could not store them (they are in `built`)
    build_s: float = 0.0  # seconds spent building, and writing (for benchmarks and stats)
    write_s: float = 0.0


class _Sink:
    """One store connection per worker process, on an event loop of its own, opened
    at first use and reopened after a failure (the proxy spaces retries out)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.store: BaseStore | None = None
        # Closed before the process exits: aiosqlite's thread is not a daemon, and
        # multiprocessing runs its finalizers before the interpreter joins threads.
        multiprocessing.util.Finalize(self, self.close, exitpriority=10)

    def write(self, traces: list[Trace]) -> None:
        run = self.loop.run_until_complete
        try:
            if self.store is None:
                store = make_store(self.url)
                try:
                    run(asyncio.wait_for(store.open(), WRITE_TIMEOUT))
                except BaseException:
                    run(quiet_close(store))
                    raise
                self.store = store
            run(asyncio.wait_for(self.store.record_many(traces), WRITE_TIMEOUT))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        store, self.store = self.store, None
        if store is not None and not self.loop.is_closed():
            # Bounded: a connection stuck on a dead server must not hold the worker.
            try:
                self.loop.run_until_complete(asyncio.wait_for(quiet_close(store), CLOSE_TIMEOUT))
            except TimeoutError:
                pass


_sinks: dict[str, _Sink] = {}


def build_and_record(batch: list[Exchange], db_url: str | None) -> Outcome:
    """Build `batch`; store it when `db_url` is given (None: the proxy is spooling,
    so it must keep the order and write itself). Never raises."""
    t0 = time.perf_counter()
    built = build_batch(batch)
    t1 = time.perf_counter()
    traces = [b[0] for b in built if b[0] is not None]
    if db_url is None or not traces:
        return Outcome(built, build_s=t1 - t0)
    sink = _sinks.get(db_url)
    if sink is None:
        sink = _sinks[db_url] = _Sink(db_url)
    try:
        sink.write(traces)
    except Exception as e:  # noqa: BLE001 - any store trouble: the proxy keeps the batch
        error = f"{type(e).__name__}: {e}"
        return Outcome(built, error=error, build_s=t1 - t0, write_s=time.perf_counter() - t1)
    stored = [(None, *rest) for _, *rest in built]
    return Outcome(stored, len(traces), build_s=t1 - t0, write_s=time.perf_counter() - t1)


async def quiet_close(store: BaseStore) -> None:
    """Close a store that may be broken; the writer and the workers both use it."""
    try:
        await store.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; nothing to save
        pass
