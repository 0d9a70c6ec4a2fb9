"""The background writer: batching, the spool when the store is away, drops counted."""

from __future__ import annotations

import asyncio
import json

import pytest

import storage
from addon.capture import Exchange
from addon.spool import Spool
from addon.writer import WORKER_WRITE_TRIES, Writer
from tests.support.flows import json_exchange


def exchange(i: int, session: str | None = None) -> Exchange:
    return json_exchange(i, session)


async def wait_for_count(w: Writer, stat: str, n: int, seconds: float = 15.0) -> None:
    """Until the writer's `stat` counter reaches n (the assertions then say if it did)."""
    for _ in range(int(seconds / 0.05)):
        if w.stats[stat] >= n:
            return
        await asyncio.sleep(0.05)


async def test_batches_reach_the_store_in_order(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    w = Writer(
        lambda: storage.make_store(url),
        Spool(tmp_path / "spool", 1 << 20),
        batch_size=7,
        flush_interval=0.05,
    )
    w.start()
    for i in range(20):
        w.submit(exchange(i, session="s1"))
    await asyncio.sleep(0.3)
    await w.stop()
    assert w.stats["recorded"] == 20 and w.stats["spooled"] == 0
    async with storage.make_store(url, readonly=True) as s:
        rows = await s.recent(limit=50)
        assert [r["prompt_tokens"] for r in reversed(rows)] == [100 + i for i in range(20)]
        run = await s.session("s1")
        assert [c["turn"] for c in run["calls"]] == list(range(1, 21))


async def test_store_away_spools_then_replays_exactly_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    state = {"up": False}
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    def factory():
        # While "down", point at a path that cannot be created (a file's child).
        return storage.make_store(url if state["up"] else f"sqlite:///{blocker}/db.sqlite")

    spool = Spool(tmp_path / "spool", 1 << 20)
    w = Writer(factory, spool, batch_size=5, flush_interval=0.02)
    w.start()
    for i in range(12):
        w.submit(exchange(i))
    await wait_for_count(w, "spooled", 12)
    assert w.stats["spooled"] == 12 and w.stats["recorded"] == 0
    assert len(spool.files()) >= 1
    state["up"] = True
    w._retry_at = 0  # do not wait out the back-off in a test
    for i in range(12, 15):
        w.submit(exchange(i))
    await asyncio.sleep(0.5)
    await w.stop()
    assert spool.files() == []
    async with storage.make_store(url, readonly=True) as s:
        rows = await s.recent(limit=100)
    uids = [r["uid"] for r in reversed(rows)]
    assert uids == [f"uid-{i:04d}" for i in range(15)]  # all of them, once, in order


async def test_replay_of_an_already_written_file_does_not_duplicate(tmp_path):
    from addon.extract import build_trace

    url = f"sqlite:///{tmp_path / 'c.db'}"
    traces = [build_trace(exchange(i))[0] for i in range(3)]
    async with storage.make_store(url) as s:
        await s.record_many(traces)
    spool = Spool(tmp_path / "spool", 1 << 20)
    assert spool.append(traces)  # e.g. a crash between the write and the spool removal
    w = Writer(lambda: storage.make_store(url), spool)
    w.start()
    await asyncio.sleep(0.3)
    await w.stop()
    async with storage.make_store(url, readonly=True) as s:
        assert await s.count() == 3
    assert spool.files() == []


async def test_full_queue_and_full_spool_are_counted(tmp_path, caplog):
    w = Writer(
        lambda: storage.make_store(f"sqlite:///{tmp_path / 'd.db'}"),
        Spool(tmp_path / "spool", 10),
        queue_size=2,
    )
    for i in range(5):  # writer not started: nothing drains the queue
        w.submit(exchange(i))
    assert w.stats["dropped"] == 3
    assert "writer queue full" in caplog.text
    w._to_spool([])  # an empty batch fits
    from addon.extract import build_trace

    w._to_spool([build_trace(exchange(9))[0]])  # 10 bytes cannot hold a trace
    assert w.stats["dropped"] == 4 and "spool full" in caplog.text


async def test_retention_prunes_in_batches_and_stats_are_logged(tmp_path, caplog):
    import logging
    import time as _time

    from addon.extract import build_trace

    url = f"sqlite:///{tmp_path / 'e.db'}"
    old = []
    for i in range(1200):  # three batches of 500
        t = build_trace(exchange(i))[0]
        t.uid, t.ts = f"old-{i}", _time.time() - 40 * 86400
        old.append(t)
    fresh = build_trace(exchange(5000))[0]
    fresh.ts = _time.time()
    async with storage.make_store(url) as s:
        await s.record_many([*old, fresh])
    caplog.set_level(logging.INFO, logger="llmprof")
    w = Writer(
        lambda: storage.make_store(url),
        Spool(tmp_path / "spool", 1 << 20),
        retention_days=30,
        body_retention_days=1,
        stats_interval=0.1,
    )
    w._next_prune = 0
    w.start()
    await wait_for_count(w, "pruned", 1200)
    w.submit(exchange(7))
    await asyncio.sleep(0.4)
    await w.stop()
    assert w.stats["pruned"] == 1200 and w.stats["pruned_bodies"] == 1200
    async with storage.make_store(url, readonly=True) as s:
        assert await s.count() == 2
    assert "retention removed 1200 traces older than 30 days" in caplog.text
    assert "llmprof: recorded=1 spooled=0 replayed=0 dropped=0" in caplog.text


async def test_a_locked_sqlite_file_spools_then_replays(tmp_path, caplog):
    """Another process holds the SQLite write lock past the busy timeout: the batch
    goes to the spool, and is written once the lock is released."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'locked.db'}"
    async with storage.make_store(url):
        pass  # create and migrate
    blocker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    spool = Spool(tmp_path / "spool", 1 << 20)
    w = Writer(lambda: storage.make_store(url), spool, batch_size=10, flush_interval=0.02)
    w.start()
    for i in range(4):
        w.submit(exchange(i))
    await wait_for_count(w, "spooled", 4)
    assert w.stats["spooled"] == 4 and spool.files()
    assert "store unavailable, spooling calls" in caplog.text
    blocker.execute("ROLLBACK")
    blocker.close()
    w._retry_at = 0
    w.submit(exchange(4))
    await wait_for_count(w, "recorded", 5)
    await w.stop()
    async with storage.make_store(url, readonly=True) as s:
        assert [r["uid"] for r in reversed(await s.recent())] == [f"uid-{i:04d}" for i in range(5)]
    assert spool.files() == []


def pooled_writer(tmp_path, url: str, batch_size: int = 5, workers: int = 1, **kw) -> Writer:
    """A writer with spawned worker processes, as the addon makes it (one by default)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    kw.setdefault("concurrency", workers)
    spool = kw.pop("spool", None) or Spool(tmp_path / "spool", 1 << 20)
    return Writer(
        lambda: storage.make_store(url),
        spool,
        batch_size=batch_size,
        flush_interval=0.05,
        executor=pool,
        **kw,
    )


async def test_analysis_and_writes_in_a_worker_process(tmp_path):
    """The default: exchanges go to a spawned worker process, which builds and stores
    them on its own connection; only counters and problems come back."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    w = pooled_writer(tmp_path, url, worker_db_url=url)
    written_here = []
    w.start()
    for _ in range(200):  # the proxy's own store opens first (fail fast, replay)
        if w.store is not None:
            break
        await asyncio.sleep(0.01)
    w.store.record_many = written_here.append  # would fail if this process wrote
    for i in range(6):
        w.submit(exchange(i, session="p"))
    bad = exchange(99)
    bad.chunks = [b"<html>not json</html>"]
    w.submit(bad)
    await wait_for_count(w, "recorded", 7)
    await w.stop()
    assert w.stats["recorded"] == 7 and w.stats["spooled"] == 0 and written_here == []
    assert w.executor is None and w.problems["response body is not JSON"] == 1
    async with storage.make_store(url, readonly=True) as s:
        rows = await s.recent(limit=10)
        run = await s.session("p")
    assert len(rows) == 7 and [c["turn"] for c in run["calls"]] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["cost_usd"] == pytest.approx(100 * 2.5e-6 + 7 * 1e-5)  # priced there


async def test_two_workers_build_and_write_side_by_side(tmp_path):
    """Two batches in flight at once: every call lands once, and each run's turns
    still follow the calls' start times though batches commit in either order."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    w = pooled_writer(tmp_path, url, batch_size=3, workers=2, worker_db_url=url)
    w.start()
    n = 60
    for i in range(n):
        w.submit(exchange(i, session=f"s{i % 2}"))
    await wait_for_count(w, "recorded", n, seconds=30)
    await w.stop()
    assert w.stats["recorded"] == n and w.stats["spooled"] == 0
    async with storage.make_store(url, readonly=True) as s:
        assert await s.count() == n
        for k in (0, 1):
            calls = (await s.session(f"s{k}"))["calls"]
            assert [c["turn"] for c in calls] == list(range(1, n // 2 + 1))
            assert [c["ts"] for c in calls] == sorted(c["ts"] for c in calls)


async def test_analysis_only_in_the_worker_when_it_does_not_write(tmp_path):
    """Without a URL for the workers (or while the spool holds calls), the worker
    builds and the traces come back, pickled, to be written here."""
    url = f"sqlite:///{tmp_path / 'v.db'}"
    w = pooled_writer(tmp_path, url)
    w.start()
    for i in range(6):
        w.submit(exchange(i, session="q"))
    await wait_for_count(w, "recorded", 6)
    await w.stop()
    async with storage.make_store(url, readonly=True) as s:
        run = await s.session("q")
    assert [c["turn"] for c in run["calls"]] == [1, 2, 3, 4, 5, 6]


async def test_a_worker_that_cannot_write_hands_the_batch_back(tmp_path, caplog):
    """The worker's connection fails (here: its URL points where no database can be
    made): the batch comes back, goes to the spool, and is replayed here once,
    in order; later batches flow again."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    spool = Spool(tmp_path / "spool", 1 << 20)
    w = pooled_writer(
        tmp_path, url, batch_size=4, spool=spool, worker_db_url=f"sqlite:///{blocker}/db.sqlite"
    )
    w.start()
    n = 0
    for _ in range(WORKER_WRITE_TRIES + 2):  # one batch at a time
        for _ in range(4):
            w.submit(exchange(n, session="r"))
            n += 1
        await wait_for_count(w, "recorded", n)
        w._retry_at = 0  # retry the store now, not after the backoff
    assert "store unavailable, spooling calls" in caplog.text
    assert "workers cannot write to the database" in caplog.text  # then it writes here
    assert w.worker_db_url is None and w._worker_url == f"sqlite:///{blocker}/db.sqlite"
    assert w.stats["spooled"] == 4 * WORKER_WRITE_TRIES
    w._worker_retry_at = 0  # the pause is over: the workers get the next batch again
    for _ in range(4):
        w.submit(exchange(n, session="r"))
        n += 1
    await wait_for_count(w, "recorded", n)
    assert w._worker_url is None and w.worker_db_url == f"sqlite:///{blocker}/db.sqlite"
    await w.stop()
    assert w.stats["recorded"] == n and w.stats["dropped"] == 0
    assert w.stats["spooled"] == 4 * (WORKER_WRITE_TRIES + 1) and spool.files() == []
    async with storage.make_store(url, readonly=True) as s:
        assert [r["uid"] for r in reversed(await s.recent(limit=n))] == [
            f"uid-{i:04d}" for i in range(n)
        ]
        assert [c["turn"] for c in (await s.session("r"))["calls"]] == list(range(1, n + 1))


@pytest.mark.parametrize(
    "body, encoding, stored_as_sent",
    [
        ('{\n  "model": "gpt-4o",\n  "messages": [{"role": "user", "content": "héllo ✓"}]\n}',
         None, True),  # pretty, non-ASCII UTF-8: kept byte for byte
        ('  {"model":"gpt-4o","messages":[],"n":NaN}', "identity", True),
        ('{ "model" : "gpt-4o", "messages" : [] }', "gzip", False),  # compressed: serialised
        ('\ufeff{ "model" : "gpt-4o", "messages" : [] }', None, False),  # BOM
        ('{ "model" : "gpt-4o", "messages" : [] }', "utf-16", False),  # not UTF-8
    ],
)  # fmt: skip
def test_packed_bodies_round_trip_the_request(body, encoding, stored_as_sent):
    """The worker stores a plain JSON request as it was sent (no second json.dumps);
    any other request is serialised from what was parsed. Either way, unpacking gives
    back exactly the parsed request."""
    import gzip

    import zstandard

    from addon.build import build_one
    from storage.rows import unpack_bodies

    ex = exchange(1)
    raw = body.encode("utf-16" if encoding == "utf-16" else "utf-8")
    ex.request_body, ex.request_encoding = raw, None if encoding == "utf-16" else encoding
    if encoding == "gzip":
        ex.request_body = gzip.compress(raw)
    trace, problems, parse_failure, _ = build_one(ex)
    assert trace is not None and parse_failure is None
    packed = trace.encoded[2]
    request = unpack_bodies(packed)[0]
    expected = json.loads(raw)
    assert json.dumps(trace.request) == json.dumps(expected)  # NaN != NaN: compare the text
    assert request == json.loads(raw, parse_constant=lambda _: None)  # read back JSON-safe
    text = zstandard.ZstdDecompressor().decompress(packed)
    assert (raw in text) is stored_as_sent


async def test_a_killed_worker_loses_nothing_and_doubles_nothing(tmp_path, caplog):
    """SIGKILL the worker while it builds and writes: the writer goes on in-process,
    re-doing the batch in flight; a batch the worker had already committed is not
    stored twice (stores skip uids they hold)."""
    import os
    import signal

    url = f"sqlite:///{tmp_path / 'k.db'}"
    w = pooled_writer(tmp_path, url, batch_size=10, worker_db_url=url)
    w.start()
    n = 0
    for _ in range(3):  # the worker is up and writing
        for _ in range(10):
            w.submit(exchange(n, session="k"))
            n += 1
        await wait_for_count(w, "recorded", n)
    assert w.stats["recorded"] == n
    pids = list(w.executor._processes)  # noqa: SLF001 - the test needs the worker's pid
    for _ in range(200):
        w.submit(exchange(n, session="k"))
        n += 1
    await asyncio.sleep(0.05)  # batches are in flight in the worker
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for _ in range(30):  # if the worker had finished everything already, these meet the dead pool
        w.submit(exchange(n, session="k"))
        n += 1
    await wait_for_count(w, "recorded", n, seconds=30)
    await w.stop()
    assert "analysis worker failed" in caplog.text and w.executor is None
    assert w.stats["recorded"] >= n and w.stats["dropped"] == 0
    async with storage.make_store(url, readonly=True) as s:
        assert await s.count() == n
        calls = (await s.session("k"))["calls"]
    assert [c["turn"] for c in calls] == list(range(1, n + 1))
    assert len({c["id"] for c in calls}) == n


def test_workers_run_at_a_lower_cpu_priority_than_the_proxy():
    """The addon's workers (as recorder.py makes them) are niced: on busy cores the
    proxy and its clients go first."""
    import os

    from addon.build import WORKER_NICE
    from addon.recorder import _workers

    pool = _workers(1)
    try:
        niceness = pool.submit(os.nice, 0).result(timeout=60)
    finally:
        pool.shutdown()
    assert niceness == min(os.nice(0) + WORKER_NICE, 19)
