"""Benchmark 1: what the llmprof addon costs on the wire, against bare mitmdump.

Two mitmdump processes run side by side against the same fake HTTPS upstream (a
process of its own: tests/support/fake_upstream.py, real OpenAI wire format, answers
at once, 9 words):

  bare   mitmdump -s <redirect> -s <stream every response>
  addon  mitmdump -s <redirect> -s addon/llmprof.py        (SQLite in a temp dir)

Both stream responses: the addon streams the LLM responses it records, and mitmdump
without streaming holds a whole SSE response back, which would leave "bare" no time
to first byte to compare with. Options are otherwise identical. The redirect is
bench-only (see REDIRECT_CODE: tests/support/redirect.py defeats mitmproxy's upstream
connection reuse).

One raw httpx client (proxy URL, the mitmproxy CA, keep-alive) drives 4 scenarios:
non-streamed JSON and SSE streams, at concurrency 1 and 16. Each round runs every
scenario once per proxy, bare and addon interleaved (ABBA order across rounds), each
run bounded by time and by count. After each addon run the benchmark waits until the
addon has written every call (so its deferred writer work never lands in the next
bare run) and reads each mitmdump's CPU time (event-loop thread and other threads)
from /proc.

Reported: p50/p99 latency, throughput (median of the per-round addon/bare ratios),
time to first byte for streams, CPU ms per call, and the targets: <= 3 % added p50
latency, >= 0.9x throughput, <= 1 ms added TTFB.

    .venv/bin/python bench/bench_proxy.py            # ~2.7 minutes
    .venv/bin/python bench/bench_proxy.py --quick    # ~20 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    machine_facts,
    median,
    percentile,
    print_machine,
    print_table,
    verdict,
    write_results,
)
from tests.support.proxy import MitmdumpProcess, start_mitmdump  # noqa: E402

URL = "https://api.openai.com/v1/chat/completions"
HEADERS = {"authorization": "Bearer sk-bench-not-a-real-key", "content-type": "application/json"}
SCENARIOS = [("json", 1), ("json", 16), ("sse", 1), ("sse", 16)]
TARGET_LATENCY_PCT = 3.0
TARGET_THROUGHPUT = 0.9
TARGET_TTFB_MS = 1.0
TICK = os.sysconf("SC_CLK_TCK")

STREAM_CODE = '''"""Bench baseline: stream every response, as llmprof does for those it records."""


def responseheaders(flow):
    flow.response.stream = True
'''

# tests/support/redirect.py rewrites `server.address` in the server_connect hook, so
# mitmproxy never finds a connection it may reuse for the next request (its address no
# longer matches api.openai.com:443): every call pays a new upstream TLS handshake, and
# the sixth one on a client connection waits ~5 s on mitmproxy's 5-connections-per-
# address semaphore until the upstream closes an idle one. Real mitmdump reuses upstream
# connections, so the benchmark redirects one level lower, where the TCP connection is
# opened, and leaves every address mitmproxy and the addon see untouched.
REDIRECT_CODE = '''"""Bench-only: TCP connections for the LLM hosts go to $LLMPROF_TEST_UPSTREAM."""
import asyncio
import os
import types

import mitmproxy.proxy.server as _server

_HOST, _, _PORT = os.environ["LLMPROF_TEST_UPSTREAM"].rpartition(":")
_HOSTS = {"api.openai.com", "api.anthropic.com"}
_open = asyncio.open_connection


async def _open_connection(host=None, port=None, **kwargs):
    if host in _HOSTS:
        host, port = _HOST, int(_PORT)
    return await _open(host, port, **kwargs)


_server.asyncio = types.SimpleNamespace(**vars(asyncio))
_server.asyncio.open_connection = _open_connection
'''

# The harness creates its listening socket without TCP_NODELAY (asyncio sets it only on
# sockets whose proto is IPPROTO_TCP; accepted sockets inherit the listener's option),
# so a response written as headers + body waits ~40 ms for the peer's delayed ACK.
UPSTREAM_CODE = r"""
import socket, sys, threading, time, types
sys.path.insert(0, sys.argv[1])
import tests.support.fake_upstream as F

def nodelay_socket(*a, **k):
    s = socket.socket(*a, **k)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

F.socket = types.SimpleNamespace(**{n: getattr(socket, n) for n in dir(socket) if n[:2] != "__"})
F.socket.socket = nodelay_socket
up = F.FakeUpstream().start()
print(up.port, flush=True)

def forget():  # the fake keeps every request; a benchmark sends tens of thousands
    while True:
        time.sleep(1.0)
        up.clear()

threading.Thread(target=forget, daemon=True).start()
sys.stdin.read()  # until the benchmark closes stdin (or dies)
up.stop()
"""


# --diagnose: cProfile the event-loop thread of each mitmdump (never used for the figures).
LOOP_PROFILE_CODE = '''"""Bench diagnostics: cProfile the event-loop thread, dump at shutdown."""
import cProfile
import os

_prof = cProfile.Profile()


def running():
    _prof.enable()


def done():
    _prof.disable()
    _prof.dump_stats(os.environ["BENCH_LOOP_PROFILE"])
'''


# --gc-stats: time each mitmdump spends in the garbage collector, per generation.
GC_STATS_CODE = '''"""Bench diagnostic: seconds in gc, per generation, written at shutdown."""
import gc, json, os, time

_stats = {g: [0, 0.0] for g in (0, 1, 2)}
_t0 = [0.0]


def _cb(phase, info):
    if phase == "start":
        _t0[0] = time.perf_counter()
    else:
        s = _stats[info["generation"]]
        s[0] += 1
        s[1] += time.perf_counter() - _t0[0]


gc.callbacks.append(_cb)


def done():
    with open(os.environ["BENCH_GC_STATS"], "w") as f:
        json.dump({"objects": len(gc.get_objects()), "generations": _stats}, f)
'''


# --hooks-only: the addon's hooks run (capture, tee, snapshot) but nothing reaches the writer,
# so the difference to a full run is the writer's cost inside the proxy process.
HOOKS_ONLY_CODE = '''"""Bench what-if: llmprof's hooks only; snapshots are dropped, not written."""
from mitmproxy import ctx


def running():
    addon = ctx.master.addons.get("llmprof")
    addon.writer.submit = lambda exchange: None
'''


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(whole process, its main thread) CPU seconds, user + system, from /proc."""

    def read(path: str) -> float:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")


class Upstream:
    """The fake upstream in a process of its own, so it does not share the client's GIL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM_CODE, str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"fake upstream did not start: {line!r}")
        self.address = f"127.0.0.1:{line}"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def request_body(stream: bool) -> dict:
    """A small, realistic chat request (~6 KB, ~1.3k tokens: system prompt, a tool, 7 turns).

    The last user message carries `@@N@@`, replaced by a counter per call: real traffic
    is not one request repeated (identical requests all share one conversation
    fingerprint, which the store's run resolution scans; see docs/performance.md)."""
    system = (
        "You are a careful coding assistant working in a large Python repository. "
        "Answer briefly, cite file paths, and never invent APIs. "
    ) * 12
    messages = [{"role": "system", "content": system}]
    for i in range(3):
        messages.append({"role": "user", "content": f"Step {i}: what does module m{i} do? " * 8})
        messages.append(
            {"role": "assistant", "content": f"Module m{i} parses the input and calls f{i}. " * 8}
        )
    messages.append(
        {"role": "user", "content": "Summarise the three modules in one line (task @@N@@)."}
    )
    body = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "read_file",
                    "description": "Read a file of the repository and return its text.",
                    "parameters": {
                        "type": "object",
                        "properties": {"path": {"type": "string"}},
                        "required": ["path"],
                    },
                },
            }
        ],
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


class Proxy:
    def __init__(self, name: str, proc: MitmdumpProcess, concurrency: int) -> None:
        self.name, self.proc = name, proc
        self.client = httpx.AsyncClient(
            proxy=proc.proxy_url,
            verify=ssl.create_default_context(cafile=str(proc.ca_cert)),
            trust_env=False,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.sent = 0
        self.errors = 0
        self.error_kinds: dict[str, int] = {}


async def one_call(proxy: Proxy, payload: bytes, stream: bool) -> tuple[float, float | None]:
    """(latency, time to the first body byte or None) of one call, in seconds."""
    t0 = time.perf_counter()
    first = None
    async with proxy.client.stream("POST", URL, content=payload, headers=HEADERS) as r:
        async for chunk in r.aiter_raw():
            if first is None and chunk:
                first = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}")
    return time.perf_counter() - t0, (first if stream else None)


async def run_load(
    proxy: Proxy, stream: bool, concurrency: int, seconds: float, max_calls: int
) -> dict:
    """`concurrency` workers call back to back until `seconds` pass or `max_calls` are sent."""
    template = json.dumps(request_body(stream)).encode()
    lat: list[float] = []
    ttfb: list[float] = []
    budget = [max_calls]
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            proxy.sent += 1
            payload = template.replace(b"@@N@@", str(proxy.sent).encode())
            try:
                latency, first = await one_call(proxy, payload, stream)
            except Exception as e:  # noqa: BLE001 - counted; the run goes on
                proxy.errors += 1
                kind = f"{type(e).__name__}: {e}"[:120]
                proxy.error_kinds[kind] = proxy.error_kinds.get(kind, 0) + 1
                continue
            lat.append(latency)
            if first is not None:
                ttfb.append(first)

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), seconds + 60)
    elapsed = time.perf_counter() - t0
    return {"lat": lat, "ttfb": ttfb, "calls": len(lat), "rps": len(lat) / elapsed}


def count_recorded(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            return c.execute("SELECT count(*) FROM traces").fetchone()[0]
    except sqlite3.Error:
        return -1


async def drained(db: Path, expected: int, timeout: float = 20.0) -> int:
    """Wait until the addon has stored `expected` calls (bounded); return what it stored."""
    deadline = time.monotonic() + timeout
    n = count_recorded(db)
    while n < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        n = count_recorded(db)
    return n


def new_cell() -> dict:
    return {"lat": [], "ttfb": [], "rps": [], "calls": 0, "cpu": 0.0, "cpu_loop": 0.0}


async def bench(args, bare: Proxy, addon: Proxy, db: Path) -> dict:
    data = {
        f"{kind} c={c}": {
            "bare": new_cell(),
            "addon": new_cell(),
            "ratios_rps": [],
            "ratios_p50": [],
            "ttfb_diffs": [],
        }
        for kind, c in SCENARIOS
    }
    # Warm-up: connections, TLS, mitmproxy's certificate for api.openai.com, tokenizer load.
    for p in (bare, addon):
        for kind, c in SCENARIOS:
            await run_load(p, kind == "sse", c, args.warmup, 10_000)
    if not args.hooks_only:
        await drained(db, addon.sent - addon.errors)
    started = time.monotonic()
    rounds = 0
    for rnd in range(args.rounds):
        if time.monotonic() - started > args.max_minutes * 60:
            print(f"  time budget reached after {rounds} rounds", flush=True)
            break
        order = (bare, addon) if rnd % 2 == 0 else (addon, bare)
        for kind, c in SCENARIOS:
            key = f"{kind} c={c}"
            got = {}
            for p in order:
                cpu0, loop0 = cpu_seconds(p.proc.pid)
                got[p.name] = r = await run_load(p, kind == "sse", c, args.seconds, args.max_calls)
                if p is addon and not args.hooks_only:  # its writer's work is done first
                    await drained(db, addon.sent - addon.errors)
                cpu1, loop1 = cpu_seconds(p.proc.pid)
                cell = data[key][p.name]
                cell["lat"] += r["lat"]
                cell["ttfb"] += r["ttfb"]
                cell["rps"].append(r["rps"])
                cell["calls"] += r["calls"]
                cell["cpu"] += cpu1 - cpu0
                cell["cpu_loop"] += loop1 - loop0
            if got["bare"]["rps"] > 0:
                data[key]["ratios_rps"].append(got["addon"]["rps"] / got["bare"]["rps"])
            if got["bare"]["lat"] and got["addon"]["lat"]:
                data[key]["ratios_p50"].append(
                    median(got["addon"]["lat"]) / median(got["bare"]["lat"])
                )
            if got["bare"]["ttfb"] and got["addon"]["ttfb"]:
                data[key]["ttfb_diffs"].append(
                    median(got["addon"]["ttfb"]) - median(got["bare"]["ttfb"])
                )
        rounds += 1
        print(
            f"  round {rounds}/{args.rounds} done ({time.monotonic() - started:.0f} s)", flush=True
        )
    data["_rounds"] = rounds
    return data


def summarise(data: dict) -> list[dict]:
    rows = []
    for kind, c in SCENARIOS:
        key = f"{kind} c={c}"
        a, b = data[key]["bare"], data[key]["addon"]
        per = {"bare": a, "addon": b}
        row: dict = {"scenario": key, "calls": {n: x["calls"] for n, x in per.items()}}
        row["p50_ms"] = {n: median(x["lat"]) * 1000 for n, x in per.items()}
        row["p99_ms"] = {n: percentile(x["lat"], 99) * 1000 for n, x in per.items()}
        row["rps"] = {n: median(x["rps"]) for n, x in per.items()}
        row["cpu_ms_per_call"] = {
            n: {
                "total": x["cpu"] * 1000 / max(x["calls"], 1),
                "event_loop_thread": x["cpu_loop"] * 1000 / max(x["calls"], 1),
                "other_threads": (x["cpu"] - x["cpu_loop"]) * 1000 / max(x["calls"], 1),
            }
            for n, x in per.items()
        }
        row["throughput_ratio"] = median(data[key]["ratios_rps"])
        # Verdicts use the rounds' paired figures (addon vs the bare run next to it), which
        # a drifting machine disturbs less than the pooled ones (kept for reference).
        row["added_p50_pct"] = (median(data[key]["ratios_p50"]) - 1) * 100
        row["added_p50_pct_pooled"] = (row["p50_ms"]["addon"] / row["p50_ms"]["bare"] - 1) * 100
        row["added_p50_ms"] = row["p50_ms"]["addon"] - row["p50_ms"]["bare"]
        row["latency_ok"] = row["added_p50_pct"] <= TARGET_LATENCY_PCT
        row["throughput_ok"] = row["throughput_ratio"] >= TARGET_THROUGHPUT
        if kind == "sse":
            row["ttfb_p50_ms"] = {n: median(x["ttfb"]) * 1000 for n, x in per.items()}
            row["ttfb_p99_ms"] = {n: percentile(x["ttfb"], 99) * 1000 for n, x in per.items()}
            row["added_ttfb_ms"] = median(data[key]["ttfb_diffs"]) * 1000
            row["added_ttfb_ms_pooled"] = row["ttfb_p50_ms"]["addon"] - row["ttfb_p50_ms"]["bare"]
            row["ttfb_ok"] = row["added_ttfb_ms"] <= TARGET_TTFB_MS
        rows.append(row)
    return rows


def start_proxy(tmp: Path, name: str, scripts: list, env: dict, extra: list) -> MitmdumpProcess:
    last: Exception | None = None
    for _ in range(3):  # a busy machine occasionally loses a start; try again
        try:
            return start_mitmdump(
                tmp / name, scripts=scripts, env=env, confdir=tmp / "mitmconf", extra_args=extra
            )
        except RuntimeError as e:
            last = e
            time.sleep(1)
    raise RuntimeError(f"could not start the {name} mitmdump: {last}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    ap.add_argument("--seconds", type=float, default=1.5, help="per run (default 1.5)")
    ap.add_argument("--max-calls", type=int, default=5000, help="cap per run (default 5000)")
    ap.add_argument("--warmup", type=float, default=0.5, help="per scenario and proxy (s)")
    ap.add_argument("--max-minutes", type=float, default=5.0, help="no new round after this")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 0.5 s: a smoke run")
    ap.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="what-if: sys.setswitchinterval in both mitmdumps (Python's default is 5 ms)",
    )
    ap.add_argument(
        "--hooks-only",
        action="store_true",
        help="what-if: the addon captures every call but hands nothing to its writer",
    )
    ap.add_argument(
        "--gc-stats",
        action="store_true",
        help="time each mitmdump's garbage collections (per generation) and print them",
    )
    ap.add_argument(
        "--diagnose",
        action="store_true",
        help="cProfile each mitmdump's event-loop thread and print its top functions "
        "(slows both; for finding where the time goes, not for the figures)",
    )
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 2, 0.5, 0.2
    t_start = time.monotonic()
    facts = machine_facts()
    print_machine(facts)
    print(
        f"proxy overhead: {args.rounds} rounds x {len(SCENARIOS)} scenarios x 2 proxies, "
        f"{args.seconds} s per run",
        flush=True,
    )

    tmp = Path(tempfile.mkdtemp(prefix="llmprof-bench-proxy-"))
    (tmp / "stream_all.py").write_text(STREAM_CODE)
    (tmp / "bench_redirect.py").write_text(REDIRECT_CODE)
    db = tmp / "addon.db"
    procs: list[MitmdumpProcess] = []
    upstream: Upstream | None = None
    try:
        try:
            upstream = Upstream()
            env = {"LLMPROF_TEST_UPSTREAM": upstream.address, "LLMPROF_HOME": str(tmp / "home")}

            def diagnostics(name: str) -> dict[str, str]:  # where a proxy's --diagnose and
                return {  # --gc-stats reports go
                    "BENCH_LOOP_PROFILE": str(tmp / f"{name}.prof"),
                    "BENCH_GC_STATS": str(tmp / f"{name}.gc.json"),
                }

            first = [tmp / "bench_redirect.py"]
            if args.switch_interval_ms is not None:
                (tmp / "switch.py").write_text(
                    f"import sys\n\nsys.setswitchinterval({args.switch_interval_ms / 1000!r})\n"
                )
                first.append(tmp / "switch.py")
            if args.diagnose:
                (tmp / "loop_profile.py").write_text(LOOP_PROFILE_CODE)
                first.append(tmp / "loop_profile.py")
            if args.gc_stats:
                (tmp / "gc_stats.py").write_text(GC_STATS_CODE)
                first.append(tmp / "gc_stats.py")
            procs.append(
                start_proxy(
                    tmp,
                    "bare",
                    [*first, tmp / "stream_all.py"],
                    env | diagnostics("bare"),
                    [],
                )
            )
            last = []
            if args.hooks_only:
                (tmp / "hooks_only.py").write_text(HOOKS_ONLY_CODE)
                last.append(tmp / "hooks_only.py")
            procs.append(
                start_proxy(
                    tmp,
                    "addon",
                    [*first, ROOT / "addon" / "llmprof.py", *last],
                    env | diagnostics("addon"),
                    ["--set", f"llmprof_db_url=sqlite:///{db}"],
                )
            )
            procs[1].wait_for_log("recording LLM calls", timeout=20)
            cmax = max(c for _, c in SCENARIOS)
            bare, addon = Proxy("bare", procs[0], cmax), Proxy("addon", procs[1], cmax)

            async def go() -> dict:
                try:
                    return await bench(args, bare, addon, db)
                finally:
                    await bare.client.aclose()
                    await addon.client.aclose()

            data = asyncio.run(go())
        finally:
            for p in procs:
                p.stop()
            if upstream is not None:
                upstream.stop()
        recorded = count_recorded(db)
        loop_profiles = diagnose(tmp) if args.diagnose else None
        gc_stats = read_gc_stats(tmp) if args.gc_stats else None
        if args.diagnose and os.environ.get("BENCH_KEEP_PROFILES"):  # for pstats by hand
            for name in ("bare", "addon"):
                if (tmp / f"{name}.prof").exists():
                    shutil.copy(tmp / f"{name}.prof", os.environ["BENCH_KEEP_PROFILES"] + name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = summarise(data)
    report(rows, data["_rounds"], recorded, bare, addon)
    settings = {
        "rounds": data["_rounds"],
        "seconds_per_run": args.seconds,
        "max_calls_per_run": args.max_calls,
        "warmup_s": args.warmup,
        "request": "OpenAI chat, gpt-4o-mini, ~6 KB body, gzip; upstream answers at once, 9 words",
        "bare": "mitmdump -s <bench redirect> -s <stream every response>",
        "addon": "mitmdump -s <bench redirect> -s addon/llmprof.py (SQLite, default batch/flush)",
        "client": "httpx.AsyncClient over the proxy, keep-alive, one connection per worker",
    }
    results = {
        "scenarios": rows,
        "addon_recorded": recorded,
        "addon_sent": addon.sent,
        "client_errors": {"bare": bare.errors, "addon": addon.errors},
        "switch_interval_ms": args.switch_interval_ms,
        "hooks_only": args.hooks_only,
        "loop_profiles": loop_profiles,
        "gc_stats": gc_stats,
        "client_error_kinds": {"bare": bare.error_kinds, "addon": addon.error_kinds},
    }
    name = "proxy"  # what-if runs never overwrite the figures
    if args.hooks_only:
        name += "_hooks_only"
    if args.switch_interval_ms is not None:
        name += f"_switch_{args.switch_interval_ms:g}ms"
    if args.diagnose:
        name += "_diagnose"
    if args.gc_stats:
        name += "_gc"
    if args.quick:
        name += "-quick"
    write_results(name, facts, settings, results, time.monotonic() - t_start)
    return 0


def read_gc_stats(tmp: Path) -> dict:
    """Each mitmdump's garbage collections (--gc-stats), printed and returned."""
    out = {}
    for name in ("bare", "addon"):
        path = tmp / f"{name}.gc.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    print_table(
        "garbage collections in each mitmdump (count, seconds) by generation; live objects at exit",
        ["proxy", "gen0", "gen0 s", "gen1", "gen1 s", "gen2", "gen2 s", "objects"],
        [
            [name, *(v for g in ("0", "1", "2") for v in d["generations"][g]), d["objects"]]
            for name, d in out.items()
        ],
    )
    return out


def diagnose(tmp: Path, top: int = 25) -> dict:
    """Top functions of each mitmdump's event-loop thread (cProfile, --diagnose)."""
    import pstats

    out = {}
    for name in ("bare", "addon"):
        path = tmp / f"{name}.prof"
        if not path.exists():
            continue
        st = pstats.Stats(str(path))
        rows = []
        for (file, line, fn), (cc, _nc, tt, ct, _callers) in st.stats.items():  # type: ignore
            short = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
            rows.append(
                {"function": f"{short}:{line}({fn})", "calls": cc, "self_s": tt, "cum_s": ct}
            )
        rows.sort(key=lambda r: r["self_s"], reverse=True)
        ours = sorted(
            (r for r in rows if r["function"].startswith(("addon/", "storage/"))),
            key=lambda r: r["cum_s"],
            reverse=True,
        )
        out[name] = {"top_self": rows[:top], "llmprof_cumulative": ours[:top]}
        print_table(
            f"{name} mitmdump, event-loop thread: top functions by self time (cProfile)",
            ["function", "calls", "self s", "cum s"],
            [[r["function"][-80:], r["calls"], r["self_s"], r["cum_s"]] for r in rows[:top]],
        )
        if ours:
            print_table(
                f"{name} mitmdump, event-loop thread: llmprof's functions by cumulative time",
                ["function", "calls", "self s", "cum s"],
                [[r["function"][-80:], r["calls"], r["self_s"], r["cum_s"]] for r in ours[:top]],
            )
    return out


def report(rows: list[dict], rounds: int, recorded: int, bare: Proxy, addon: Proxy) -> None:
    table = []
    for r in rows:
        table.append(
            [
                r["scenario"],
                r["p50_ms"]["bare"],
                r["p50_ms"]["addon"],
                f"{r['added_p50_pct']:+.1f}%",
                r["p99_ms"]["bare"],
                r["p99_ms"]["addon"],
                r["rps"]["bare"],
                r["rps"]["addon"],
                f"{r['throughput_ratio']:.2f}x",
                r.get("ttfb_p50_ms", {}).get("bare"),
                r.get("ttfb_p50_ms", {}).get("addon"),
                f"{r['added_ttfb_ms']:+.2f}" if "added_ttfb_ms" in r else "-",  # paired
            ]
        )
    print_table(
        f"Proxy overhead, addon vs bare mitmdump ({rounds} interleaved rounds; ms and calls/s; "
        "added = median of the rounds' paired p50 ratios)",
        [
            "scenario",
            "p50 bare",
            "p50 addon",
            "added",
            "p99 bare",
            "p99 addon",
            "rps bare",
            "rps addon",
            "rps ratio",
            "TTFB bare",
            "TTFB addon",
            "+TTFB ms",
        ],
        table,
    )
    cpu = []
    for r in rows:
        b, a = r["cpu_ms_per_call"]["bare"], r["cpu_ms_per_call"]["addon"]
        cpu.append(
            [
                r["scenario"],
                r["calls"]["bare"],
                r["calls"]["addon"],
                b["total"],
                a["total"],
                b["event_loop_thread"],
                a["event_loop_thread"],
                b["other_threads"],
                a["other_threads"],
            ]
        )
    print_table(
        "mitmdump CPU per call, ms (event-loop thread + other threads: the addon's writer, "
        "aiosqlite)",
        [
            "scenario",
            "calls bare",
            "calls addon",
            "cpu bare",
            "cpu addon",
            "loop bare",
            "loop addon",
            "other bare",
            "other addon",
        ],
        cpu,
    )
    targets = []
    for r in rows:
        targets.append(
            [
                r["scenario"],
                "added p50 latency <= 3 %",
                f"{r['added_p50_pct']:+.1f} % ({r['added_p50_ms']:+.2f} ms)",
                verdict(r["latency_ok"]),
            ]
        )
        targets.append(
            [
                r["scenario"],
                "throughput >= 0.9x",
                f"{r['throughput_ratio']:.2f}x",
                verdict(r["throughput_ok"]),
            ]
        )
        if "ttfb_ok" in r:
            targets.append(
                [
                    r["scenario"],
                    "added TTFB <= 1 ms",
                    f"{r['added_ttfb_ms']:+.2f} ms",
                    verdict(r["ttfb_ok"]),
                ]
            )
    print_table("Targets", ["scenario", "target", "measured", "verdict"], targets)
    print(
        f"\naddon recorded {recorded:,} of the {addon.sent:,} calls sent through it "
        f"(client errors: addon {addon.errors}, bare {bare.errors})",
        flush=True,
    )
    for p in (bare, addon):
        for kind, n in p.error_kinds.items():
            print(f"  {p.name}: {n} x {kind}")


if __name__ == "__main__":
    sys.exit(main())
