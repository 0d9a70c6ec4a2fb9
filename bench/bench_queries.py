"""Benchmark 3: every API endpoint at scale, on SQLite and on PostgreSQL.

Loads N synthetic traces (default 1,000,000: 30 days, 20 models, 5,000 runs, 200
templates, realistic token sizes) into each backend through the store's own
`record_many`, serves the real API app with uvicorn, and times each endpoint over
HTTP (p50/p95 of R requests, after a warm-up). Prints the query plans of the
summaries. Writes bench/results/queries.json.

    .venv/bin/python bench/bench_queries.py [--traces 1000000] [--rounds 40]
                                            [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import storage  # noqa: E402
from api.app import create_app  # noqa: E402
from storage.trace import Trace  # noqa: E402

PG_URL = os.environ.get("LLMPROF_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MODELS = [f"model-{i:02d}" for i in range(20)]
COMPONENTS = ("system prompt", "tool schemas", "user input", "history (assistant)", "tool results")


def synthetic(n: int, seed: int = 7) -> list[Trace]:
    rng = random.Random(seed)
    now = time.time()
    out = []
    for i in range(n):
        prompt = int(rng.lognormvariate(8.5, 1.0)) + 50
        completion = int(rng.lognormvariate(5.5, 1.0)) + 1
        cached = int(prompt * rng.random() * 0.8) if rng.random() < 0.5 else 0
        cost = round((prompt - cached) * 3e-6 + cached * 3e-7 + completion * 1.5e-5, 9)
        split = [rng.random() for _ in COMPONENTS]
        total = sum(split)
        comps = {c: int(prompt * w / total) for c, w in zip(COMPONENTS, split, strict=True)}
        route = rng.randrange(200)
        dup = round(cost * 0.05, 9) if rng.random() < 0.1 else 0.0
        cache = round(cost * 0.2, 9) if rng.random() < 0.2 else 0.0
        out.append(
            Trace(
                uid=f"b{i:08d}",
                ts=now - 30 * 86400 * (1 - i / n),
                provider=("openai", "anthropic")[i % 2],
                host="api.openai.com",
                endpoint="/v1/chat/completions",
                api="chat",
                model=MODELS[rng.randrange(20)],
                status=200,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=cached,
                usage_source="provider",
                cost_usd=None if rng.random() < 0.01 else cost,
                latency_ms=rng.uniform(200, 9000),
                session_hint=f"run-{rng.randrange(5000)}",
                route=f"route-{route:03d}",
                route_label=f"Template {route}",
                components=comps,
                reclaim_dup_usd=dup,
                reclaim_cache_usd=cache,
                reclaimable_usd=dup + cache,
                tool_usage=[
                    {
                        "tool": f"t{route % 7}-{k}",
                        "tokens": 300,
                        "called": k == 0,
                        "residual_usd": 9e-4,
                    }
                    for k in range(3)
                ],
            )
        )
    return out


async def load(url: str, traces: list[Trace], batch: int = 5000) -> float:
    t0 = time.perf_counter()
    async with storage.make_store(url) as s:
        for i in range(0, len(traces), batch):
            await s.record_many(traces[i : i + batch])
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ENDPOINTS = [
    "/api/health",
    "/api/traces?limit=50",
    "/api/traces?limit=50&before={mid}",
    "/api/traces/{mid}",
    "/api/summary/daily?days=30",
    "/api/summary/models",
    "/api/sessions?limit=50",
    "/api/sessions/run-42",
    "/api/routes?limit=15",
    "/api/reclaimable",
]


def time_endpoints(url: str, n: int, rounds: int) -> dict[str, dict[str, float]]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db_url=url), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    results = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            for ep in ENDPOINTS:
                path = ep.format(mid=n // 2)
                c.get(path).raise_for_status()  # warm-up
                samples = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    c.get(path).raise_for_status()
                    samples.append((time.perf_counter() - t0) * 1000)
                samples.sort()
                results[ep] = {
                    "p50_ms": round(statistics.median(samples), 2),
                    "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 2),
                }
    finally:
        server.should_exit = True
        thread.join(10)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    print(f"generating {args.traces:,} synthetic traces ...", flush=True)
    traces = synthetic(args.traces)
    report = {"traces": args.traces, "backends": {}}
    tmp = Path(tempfile.mkdtemp(prefix="llmprof-bench-"))
    for backend in args.backends.split(","):
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'bench.db'}"
        else:
            url = f"{PG_URL}?schema=bench_q_{os.getpid()}"
        seconds = asyncio.run(load(url, traces))
        print(f"{backend}: loaded in {seconds:.1f} s ({args.traces / seconds:,.0f} traces/s)")
        timings = time_endpoints(url, args.traces, args.rounds)
        report["backends"][backend] = {"load_s": round(seconds, 1), "endpoints": timings}
        print(f"{'endpoint':45} {'p50 ms':>8} {'p95 ms':>8}")
        for ep, t in timings.items():
            flag = "" if t["p95_ms"] <= 50 else "   > 50 ms target"
            print(f"{ep:45} {t['p50_ms']:8.2f} {t['p95_ms']:8.2f}{flag}")
        report["backends"][backend]["plans"] = plans = asyncio.run(query_plans(url))
        for name, plan in plans.items():
            print(f"  plan of {name}: {plan}")
        if backend == "postgresql":
            asyncio.run(_drop_schema(url))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "queries.json").write_text(json.dumps(report, indent=2))
    return 0


SUMMARY_SQL = (
    "BUCKETS",
    "MODEL_SUMMARY",
    "ROUTES",
    "TOTALS",
    "SPAN",
    "ACTIVE_DAYS",
    "UNUSED_TOOLS",
)


async def query_plans(url: str) -> dict[str, str]:
    """The plan of each summary statement, one line each."""
    kind, target = storage.parse_db_url(url)
    plans = {}
    if kind == "sqlite":
        import sqlite3

        from storage import sqlite_sql

        con = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        for name in SUMMARY_SQL:
            query = getattr(sqlite_sql, name)
            args = (0,) * query.count("?")
            rows = con.execute(f"EXPLAIN QUERY PLAN {query}", args).fetchall()
            plans[name] = " | ".join(r[-1] for r in rows)
        con.close()
        return plans
    import asyncpg

    from storage import postgres_sql
    from storage.postgres import split_schema

    dsn, schema = split_schema(url)
    con = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    names = {"MODEL_SUMMARY": "MODELS", "SPAN": None, "ACTIVE_DAYS": None}
    for name in SUMMARY_SQL:
        attr = names.get(name, name)
        if attr is None:
            continue
        query = getattr(postgres_sql, attr)
        args = [0] * query.count("$1")
        rows = await con.fetch(f"EXPLAIN {query}", *args)
        plans[name] = " | ".join(r[0].strip() for r in rows[:4])
    await con.close()
    return plans


async def _drop_schema(url: str) -> None:
    import asyncpg

    from storage.postgres import split_schema

    dsn, schema = split_schema(url)
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


if __name__ == "__main__":
    sys.exit(main())
