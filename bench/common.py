"""Helpers shared by the benchmarks: machine facts, JSON results, tables, statistics.

Every benchmark writes ``bench/results/<name>.json`` as
``{"benchmark", "machine", "settings", "results", "seconds"}`` (see ``write_results``)
and prints readable tables with ``print_table``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import secrets
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("LLMPROF_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


# ---- machine facts ------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _postgres_version(url: str = PG_URL) -> str | None:
    async def ask() -> str:
        import asyncpg

        from storage.postgres import split_schema

        con = await asyncpg.connect(split_schema(url)[0], timeout=3)
        try:
            return await con.fetchval("SHOW server_version")
        finally:
            await con.close()

    try:
        return asyncio.run(ask())
    except Exception:  # noqa: BLE001 - a missing server is a fact, not an error
        return None


def _git() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{head}{'+dirty' if dirty else ''}" if head else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_facts() -> dict[str, Any]:
    """Where the figures came from."""
    try:
        import mitmproxy.version

        mitm = mitmproxy.version.VERSION
    except Exception:  # noqa: BLE001
        mitm = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_gb": _mem_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "mitmproxy": mitm,
        "sqlite": sqlite3.sqlite_version,
        "postgres": _postgres_version(),
        "git": _git(),
        "loadavg_at_start": load,
    }


def print_machine(facts: dict[str, Any]) -> None:
    print(
        f"machine: {facts['cpu_count']} x {facts['cpu_model']}, {facts['mem_gb']} GB, "
        f"Python {facts['python']}, mitmproxy {facts['mitmproxy']}, SQLite {facts['sqlite']}, "
        f"PostgreSQL {facts['postgres'] or 'n/a'}, git {facts['git']}, {facts['date']}",
        flush=True,
    )


def write_results(
    name: str, facts: dict[str, Any], settings: dict[str, Any], results: Any, seconds: float
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "machine": facts,
        "settings": settings,
        "results": results,
        "seconds": round(seconds, 1),
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(ROOT)}", flush=True)
    return path


# ---- tables and statistics ----------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table: first column left-aligned, the others right-aligned."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    print(f"\n{title}")
    print(line(list(headers)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))
    sys.stdout.flush()


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


# ---- environments -------------------------------------------------------------------
@contextlib.contextmanager
def temp_home(prefix: str = "llmprof-bench-") -> Iterator[Path]:
    """A throwaway LLMPROF_HOME (spool, tiktoken cache), so a benchmark never touches
    the user's; removed afterwards."""
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    saved = os.environ.get("LLMPROF_HOME")
    os.environ["LLMPROF_HOME"] = str(tmp)
    try:
        yield tmp
    finally:
        if saved is None:
            os.environ.pop("LLMPROF_HOME", None)
        else:
            os.environ["LLMPROF_HOME"] = saved
        shutil.rmtree(tmp, ignore_errors=True)


def pg_schema_url(tag: str) -> str:
    """A PostgreSQL URL naming a fresh schema of its own (drop it with ``drop_pg_schema``)."""
    from storage.postgres import split_schema

    dsn, _ = split_schema(PG_URL)
    schema = f"bench_{tag}_{secrets.token_hex(4)}"
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


async def drop_pg_schema(url: str) -> None:
    import asyncpg

    from storage.postgres import split_schema

    dsn, schema = split_schema(url)
    if not schema:
        return
    con = await asyncpg.connect(dsn, timeout=10)
    try:
        await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await con.close()


def pg_available() -> bool:
    return _postgres_version() is not None
