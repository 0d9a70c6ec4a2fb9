"""Benchmark 2: records per second into SQLite and PostgreSQL.

Three paths, each at batch sizes 200 and 1000, each on a fresh database (a temp
SQLite file; a PostgreSQL schema of its own, dropped afterwards). The writer paths
run with 0, 1 and 2 analysis worker processes (`--workers`; `wN` in the path name):
with workers, each worker builds a batch and writes it on its own connection, as
the addon does by default (llmprof_workers=1); with 0, a thread builds and the
event loop writes.

  writer/minimal    the real background writer (addon.writer.Writer: extraction, the
                    profiler's analysis, record_many) fed Exchanges shaped like
                    tests/test_writer.py's `exchange()` (empty messages, a usage body)
  writer/realistic  the same writer fed realistic Exchanges: an agent's chat request
                    (~1.3k tokens: system prompt and tool shared by every call of a
                    run, a few turns, a new user message per call), half answered as
                    JSON, half as an SSE stream, in the fake upstream's wire format,
                    grouped into runs of 20 calls
  record_many       the store alone, fed the realistic Traces prebuilt (bodies included)

Throughput is N records from the first submit to the last commit (median of the
repeats). For the writer paths it also reports where the time went (building vs
record_many, summed over workers) and the CPU the writer cost the event loop, and
when a writer path misses the 20,000 records/s target it profiles the build step
(cProfile) and prints the top functions.

    .venv/bin/python bench/bench_writes.py            # ~2.2 minutes
    .venv/bin/python bench/bench_writes.py --quick    # ~10 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    drop_pg_schema,
    machine_facts,
    median,
    pg_available,
    pg_schema_url,
    print_machine,
    print_table,
    temp_home,
    verdict,
    write_results,
)

TARGET = 20_000  # records per second, into each backend


# ---- exchanges ----------------------------------------------------------------------
def minimal_exchange(i: int):
    """tests/test_writer.py's exchange: empty messages, a JSON body with usage."""
    from tests.support.flows import json_exchange

    return json_exchange(i, uid=f"bench-min-{i:08d}")


SYSTEM = (
    "You are a careful coding assistant working in a large Python repository. "
    "Answer briefly, cite file paths, and never invent APIs. "
) * 12
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name.replace('_', ' ').capitalize()} in the repository.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["path"],
            },
        },
    }
    for name in ("read_file", "list_dir", "grep", "run_tests")
]


def realistic_request(run: int, turn: int, stream: bool) -> dict:
    messages = [{"role": "system", "content": SYSTEM}]
    for t in range(min(turn, 3)):
        messages.append({"role": "user", "content": f"Step {t}: what does module m{t} do? " * 8})
        messages.append(
            {"role": "assistant", "content": f"Module m{t} parses the input and calls f{t}. " * 8}
        )
    messages.append(
        {"role": "user", "content": f"Run {run}, call {turn}: summarise module x{run}_{turn}. " * 4}
    )
    body = {"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def realistic_exchange(i: int, run_size: int = 20):
    from addon.capture import Exchange
    from tests.support import fake_upstream as fu

    run, turn = divmod(i, run_size)
    stream = i % 2 == 1
    req = realistic_request(run, turn, stream)
    plan = fu.plan_reply("openai", req, {"x-fake-cached": "1024"})
    ts = 1_700_000_000.0 + i
    if stream:
        chunks = fu.openai_events(req, plan)
        ctype = "text/event-stream; charset=utf-8"
    else:
        chunks = [fu.openai_response(req, plan)]
        ctype = "application/json"
    return Exchange(
        uid=f"bench-real-{i:08d}",
        ts=ts,
        method="POST",
        host="api.openai.com",
        port=443,
        path="/v1/chat/completions",
        request_headers={"content-type": "application/json", "user-agent": "bench/1.0"},
        request_body=json.dumps(req).encode(),
        request_encoding=None,
        session_hint=f"bench-run-{run}",
        status=200,
        content_type=ctype,
        chunks=chunks,
        chunk_times=[ts + 0.3 + 0.01 * k for k in range(len(chunks))],
        teed=True,
        end_ts=ts + 0.3 + 0.01 * len(chunks),
    )


KINDS = {"minimal": minimal_exchange, "realistic": realistic_exchange}


# ---- measurements -------------------------------------------------------------------
async def via_writer(url: str, exchanges: list, batch: int, workers: int) -> dict:
    """N exchanges through the real Writer, configured as the addon configures it
    (`workers` analysis processes that also write; 0: a thread builds, the loop writes).
    Seconds from the first submit to the last commit."""
    import storage
    from addon.recorder import _workers
    from addon.spool import Spool
    from addon.writer import Writer

    spool_dir = Path(tempfile.mkdtemp(prefix="spool-", dir=os.environ.get("LLMPROF_HOME")))
    pool = _workers(workers) if workers else None
    if pool is not None:  # spawn (and warm) every worker before the clock starts
        for f in [pool.submit(time.sleep, 0.2) for _ in range(workers)]:
            f.result()
    w = Writer(
        lambda: storage.make_store(url),
        Spool(spool_dir, 1 << 30),
        batch_size=batch,
        flush_interval=0.5,
        queue_size=len(exchanges) + 10,
        stats_interval=3600,
        executor=pool,
        worker_db_url=url if workers else None,
        concurrency=workers,
    )
    timing = {"build": 0.0, "write": 0.0}
    build = w._build

    async def timed_build(b):
        t0 = time.perf_counter()
        out = await build(b)
        if workers:  # the worker timed its own build and write
            timing["build"] += out.build_s
            timing["write"] += out.write_s
        else:
            timing["build"] += time.perf_counter() - t0
        return out

    w._build = timed_build
    w.start()
    for _ in range(1000):  # the store opens (and migrates) before the clock starts
        if w.store is not None:
            break
        await asyncio.sleep(0.01)
    if workers:  # the workers start, load the tokenizer and connect on a first batch
        w.submit(dataclasses.replace(exchanges[0], uid="warm-up"))
        while w.stats["recorded"] < 1:
            await asyncio.sleep(0.005)
        timing.update(build=0.0, write=0.0)
    record_many = w.store.record_many

    async def timed_record_many(traces):
        t0 = time.perf_counter()
        try:
            return await record_many(traces)
        finally:
            timing["write"] += time.perf_counter() - t0

    w.store.record_many = timed_record_many
    n = len(exchanges)
    done = w.stats["recorded"] + n
    deadline = time.monotonic() + 300
    t0, loop0 = time.perf_counter(), time.thread_time()
    for ex in exchanges:
        w.submit(ex)
    while w.stats["recorded"] < done and time.monotonic() < deadline:
        if w.stats["spooled"] or w.stats["dropped"]:
            break
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - t0
    loop_cpu = time.thread_time() - loop0  # what the writer costs the proxy's event loop
    stats = dict(w.stats)
    await w.stop()
    if stats.get("recorded", 0) < done:
        raise RuntimeError(f"writer recorded {stats.get('recorded', 0)} of {done}: {stats}")
    return {
        "seconds": elapsed,
        "build_s": timing["build"],
        "write_s": timing["write"],
        "loop_cpu_s": loop_cpu,
    }


async def via_record_many(url: str, traces: list, batch: int) -> dict:
    import storage

    async with storage.make_store(url) as s:
        t0, loop0, cpu0 = time.perf_counter(), time.thread_time(), time.process_time()
        for i in range(0, len(traces), batch):
            await s.record_many(traces[i : i + batch])
        elapsed = time.perf_counter() - t0
        loop_cpu, all_cpu = time.thread_time() - loop0, time.process_time() - cpu0
        stored = await s.count()
    if stored != len(traces):
        raise RuntimeError(f"stored {stored} of {len(traces)}")
    return {
        "seconds": elapsed,
        "build_s": 0.0,
        "write_s": elapsed,
        "loop_cpu_s": loop_cpu,  # Python on the event-loop thread: rows, JSON, runs
        "other_cpu_s": all_cpu - loop_cpu,  # aiosqlite's thread (SQLite itself)
    }


async def profile_record_many(url: str, traces: list, top: int = 12) -> list[dict]:
    """cProfile of the event-loop side of record_many (one batch into an empty store)."""
    import storage

    async with storage.make_store(url) as s:
        prof = cProfile.Profile()
        prof.enable()
        await s.record_many(traces)
        prof.disable()
    st = pstats.Stats(prof)
    n = len(traces)
    rows = []
    for (file, line, fn), (cc, _nc, tt, ct, _callers) in st.stats.items():  # type: ignore
        short = file.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        rows.append(
            {
                "function": f"{short}:{line}({fn})" if line else fn,
                "calls_per_record": cc / n,
                "self_us_per_record": tt / n * 1e6,
                "cumulative_us_per_record": ct / n * 1e6,
            }
        )
    return sorted(rows, key=lambda r: r["self_us_per_record"], reverse=True)[:top]


def build_traces(exchanges: list) -> list:
    """What a worker hands record_many: built, analysed, JSON encoded, bodies packed."""
    from addon.build import build_one

    return [build_one(ex)[0] for ex in exchanges]


def profile_build(exchanges: list, top: int = 15) -> dict:
    """cProfile of the writer's build step (extraction + analysis) over `exchanges`."""
    from addon.analysis import tokens

    tokens.clear_cache()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    build_traces(exchanges)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    n = len(exchanges)

    def name(func) -> str:
        file, line, fn = func
        short = file.replace(str(ROOT) + "/", "")
        if "site-packages/" in short:
            short = short.split("site-packages/", 1)[1]
        return f"{short}:{line}({fn})" if line else fn

    entries = [
        (name(func), cc, tt, ct)
        for func, (cc, _nc, tt, ct, _callers) in st.stats.items()  # type: ignore[attr-defined]
    ]
    by_tot = sorted(entries, key=lambda e: e[2], reverse=True)[:top]
    stages = {}
    for label, fn in (
        ("build_trace (decode + parse)", ("addon/extract.py", "build_trace")),
        ("profile (all analysis)", ("addon/analysis/profile.py", "profile")),
        ("  price_trace", ("addon/analysis/profile.py", "price_trace")),
        ("  attribute", ("addon/analysis/attribution.py", "attribute")),
        ("  routes.route_of", ("addon/analysis/routes.py", "route_of")),
        ("  conversation.fingerprints", ("addon/analysis/conversation.py", "fingerprints")),
        (
            "  conversation.reply_fingerprint",
            ("addon/analysis/conversation.py", "reply_fingerprint"),
        ),
        ("  findings.analyze", ("addon/analysis/findings.py", "analyze")),
        ("prepare (JSON columns, packed bodies)", ("storage/rows.py", "prepare")),
    ):
        ct = sum(e[3] for e in entries if e[0].startswith(fn[0]) and e[0].endswith(f"({fn[1]})"))
        stages[label] = ct / n * 1e6
    return {
        "records": n,
        "profiled_wall_us_per_record": wall / n * 1e6,
        "stages_us_per_record_profiled": stages,
        "top_by_self_time": [
            {
                "function": f,
                "calls_per_record": cc / n,
                "self_us_per_record": tt / n * 1e6,
                "cumulative_us_per_record": ct / n * 1e6,
            }
            for f, cc, tt, ct in by_tot
        ],
    }


async def one(path: str, backend: str, batch: int, data: dict, tmp: Path, idx: int) -> dict:
    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'w{idx}.db'}"
    else:
        url = pg_schema_url("w")
    try:
        if path == "record_many":
            return await via_record_many(url, data["traces"], batch)
        kind, _, workers = path.split("/")[1].partition(" w")
        return await via_writer(url, data[kind], batch, int(workers or 0))
    finally:
        if backend == "postgresql":
            await drop_pg_schema(url)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp / f'w{idx}.db'}{suffix}").unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000, help="per measurement (default 10k)")
    ap.add_argument(
        "--realistic-records",
        type=int,
        default=4000,
        help="per writer/realistic measurement (default 4,000: that path is the slow one)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="median of (default 3)")
    ap.add_argument("--batches", default="200,1000")
    ap.add_argument(
        "--workers",
        default="0,1,2",
        help="analysis worker processes for the writer paths (the addon's default is 1)",
    )
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--profile-records", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="1,000 records, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.records, args.repeats, args.profile_records = 1000, 1, 500
        args.realistic_records = 1000
    t_start = time.monotonic()
    facts = machine_facts()
    print_machine(facts)
    backends = args.backends.split(",")
    if "postgresql" in backends and not pg_available():
        print("PostgreSQL unreachable: measuring SQLite only", flush=True)
        backends = [b for b in backends if b != "postgresql"]
    batches = [int(b) for b in args.batches.split(",")]
    n = args.records

    with temp_home() as home:
        from addon.analysis import tokens

        tokens.encoding_for("openai", "gpt-4o")  # seed and load the tokenizer once
        print(f"building {n:,} minimal and {n:,} realistic exchanges ...", flush=True)
        realistic = [realistic_exchange(i) for i in range(n)]
        data = {
            "minimal": [minimal_exchange(i) for i in range(n)],
            "realistic": realistic[: args.realistic_records],
        }
        t0 = time.perf_counter()
        data["traces"] = build_traces(realistic)
        print(
            f"  (prebuilt {n:,} realistic traces in {time.perf_counter() - t0:.1f} s)", flush=True
        )
        req_bytes = median([len(e.request_body) for e in realistic])
        del realistic
        # The prebuilt inputs stay alive for the whole run; a writer in a proxy never holds
        # 10,000 calls at once. Keep them out of the collector's scans, so full collections
        # cost what they would in production.
        gc.collect()
        gc.freeze()
        paths = [
            f"writer/{kind} w{n}"
            for kind in ("minimal", "realistic")
            for n in map(int, args.workers.split(","))
        ] + ["record_many"]
        results: list[dict] = []
        idx = 0
        for path in paths:
            for backend in backends:
                for batch in batches:
                    runs = []
                    for _ in range(args.repeats):
                        tokens.clear_cache()  # each repeat starts from a cold token cache
                        idx += 1
                        runs.append(asyncio.run(one(path, backend, batch, data, home, idx)))
                    secs = median([r["seconds"] for r in runs])
                    n = args.realistic_records if "realistic" in path else args.records
                    row = {
                        "path": path,
                        "backend": backend,
                        "batch": batch,
                        "records": n,
                        "repeats": args.repeats,
                        "seconds": secs,
                        "records_per_s": n / secs,
                        "all_records_per_s": [n / r["seconds"] for r in runs],
                        "build_us_per_record": median([r["build_s"] for r in runs]) / n * 1e6,
                        "write_us_per_record": median([r["write_s"] for r in runs]) / n * 1e6,
                        "loop_cpu_us_per_record": median([r["loop_cpu_s"] for r in runs]) / n * 1e6,
                    }
                    if path == "record_many":
                        row["other_cpu_us_per_record"] = (
                            median([r["other_cpu_s"] for r in runs]) / n * 1e6
                        )
                    row["ok"] = row["records_per_s"] >= TARGET
                    results.append(row)
                    print(
                        f"  {path:22} {backend:10} batch {batch:5}: "
                        f"{row['records_per_s']:>9,.0f} records/s",
                        flush=True,
                    )
        prof = None
        store_prof: dict[str, list[dict]] = {}
        if any(not r["ok"] and r["path"].startswith("writer/") for r in results):
            print("profiling the build step (extraction + analysis) ...", flush=True)
            prof = profile_build(data["realistic"][: args.profile_records])
        if any(not r["ok"] and r["path"] == "record_many" for r in results):
            print("profiling record_many (event-loop side, one batch of 1,000) ...", flush=True)
            for backend in backends:
                url = f"sqlite:///{home / 'prof.db'}" if backend == "sqlite" else pg_schema_url("p")
                try:
                    store_prof[backend] = asyncio.run(
                        profile_record_many(url, data["traces"][:1000])
                    )
                finally:
                    if backend == "postgresql":
                        asyncio.run(drop_pg_schema(url))

    n = args.records
    table = [
        [
            r["path"],
            r["backend"],
            r["batch"],
            r["records"],
            r["records_per_s"],
            r["build_us_per_record"] or None,
            r["write_us_per_record"],
            1e6 / r["records_per_s"],
            r["loop_cpu_us_per_record"],
            verdict(r["ok"]),
        ]
        for r in results
    ]
    print_table(
        f"Write throughput (median of {args.repeats} runs on a fresh database; "
        f"realistic request {req_bytes / 1024:.1f} KB)",
        [
            "path",
            "backend",
            "batch",
            "records",
            "records/s",
            "build us/rec",
            "write us/rec",
            "total us/rec",
            "loop CPU us/rec",
            f">= {TARGET:,}/s",
        ],
        table,
    )
    if prof:
        print_table(
            f"Where the build step's time goes (cProfile, {prof['records']:,} realistic records, "
            f"cold token cache; profiled {prof['profiled_wall_us_per_record']:.0f} us/record)",
            ["stage", "cumulative us/record"],
            [[k, v] for k, v in prof["stages_us_per_record_profiled"].items()],
        )
        print_table(
            "Top functions by self time",
            ["function", "calls/rec", "self us/rec", "cum us/rec"],
            [
                [
                    e["function"][-70:],
                    e["calls_per_record"],
                    e["self_us_per_record"],
                    e["cumulative_us_per_record"],
                ]
                for e in prof["top_by_self_time"]
            ],
        )
    rm = [r for r in results if r["path"] == "record_many"]
    if rm:
        print_table(
            "record_many alone: where its time goes (us per record; loop = Python on the event-"
            "loop thread, sqlite thread = aiosqlite's, the rest is waiting on the server)",
            ["backend", "batch", "wall", "loop CPU", "sqlite thread CPU"],
            [
                [
                    r["backend"],
                    r["batch"],
                    r["write_us_per_record"],
                    r["loop_cpu_us_per_record"],
                    r["other_cpu_us_per_record"] if r["backend"] == "sqlite" else None,
                ]
                for r in rm
            ],
        )
    for backend, top in store_prof.items():
        print_table(
            f"record_many on {backend}: top functions on the event loop (cProfile, 1,000 records)",
            ["function", "calls/rec", "self us/rec", "cum us/rec"],
            [
                [
                    e["function"][-70:],
                    e["calls_per_record"],
                    e["self_us_per_record"],
                    e["cumulative_us_per_record"],
                ]
                for e in top
            ],
        )
    settings = {
        "records": n,
        "realistic_records": args.realistic_records,
        "repeats": args.repeats,
        "batches": batches,
        "backends": backends,
        "flush_interval_s": 0.5,
        "realistic_request_bytes_median": req_bytes,
    }
    write_results(
        "writes-quick" if args.quick else "writes",  # a smoke run keeps the figures
        facts,
        settings,
        {"paths": results, "build_profile": prof, "record_many_profile": store_prof},
        time.monotonic() - t_start,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
