"""Benchmark 4: the profiler's analysis (attribution + findings) of one call.

Part 1, request size: an agent-shaped request (system prompt, tool schemas, turns of
assistant text + tool call + tool result, a few re-read files) of ~1k, 10k, 100k and
500k tokens, in the OpenAI chat and the Anthropic messages shapes. For each it times

  attribute  addon.analysis.attribution.attribute (walk + tokenize + reconcile)
  profile    addon.analysis.profile.profile (price, attribute, template, run
             fingerprints, findings): what the writer runs per call

cold (empty token cache: addon.analysis.tokens.clear_cache() before each call) and
warm (the same request analysed again). Target: attribution of a 100k-token request
<= 40 ms.

Part 2, a 200-turn agent run: call t carries the whole history of calls 1..t-1 plus
one new turn (~500 tokens), parsed from its JSON body as the writer does (the parse
timed apart) and analysed in order with the caches carried from call to call (warm),
and, at sampled turns, again from empty caches (cold). If the cost follows the new
messages, warm analysis grows no faster than the JSON parse while the history grows
to ~100k tokens; cold time grows with it.

Part 3, the writer's realistic trace (bench_writes.realistic_exchange: a ~1.3k-token
chat request, a system prompt and 4 tools shared by every call of a 20-call run, half
answered as SSE): extraction (addon.extract.build_trace) and analysis per call, warm.

    .venv/bin/python bench/bench_analysis.py            # ~10 seconds
    .venv/bin/python bench/bench_analysis.py --quick    # ~2 seconds
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    machine_facts,
    median,
    print_machine,
    print_table,
    temp_home,
    verdict,
    write_results,
)

TARGET_MS = 40.0  # attribution of a 100k-token request
SHAPES = {
    "chat": ("openai", "gpt-4o", "chat"),
    "anthropic": ("anthropic", "claude-sonnet-4-5", "messages"),
}

_WORDS = (
    "the a an of to in for on with by from as at is are was be this that these it its "
    "we you they can will should must may not no all any each every some more most less "
    "file files module function class method value values result results error errors "
    "test tests case cases input output request response token tokens model models cache "
    "config setting settings option options path paths line lines code change changes "
    "build run runs check checks read write update create delete return call calls data "
    "user users session sessions table tables query queries index store stores batch "
    "parse parser event events stream streams proxy server client handler worker thread "
    "before after when while then else because however instead first second next last "
    "small large fast slow new old same different simple complex clear exact careful"
).split()


class Gen:
    """Deterministic agent-like text: prose, code listings, tool calls."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def prose(self, words: int) -> str:
        out, sentence = [], []
        for _ in range(words):
            sentence.append(self.rng.choice(_WORDS))
            if len(sentence) >= self.rng.randint(8, 18):
                out.append(" ".join(sentence).capitalize() + ".")
                sentence = []
        if sentence:
            out.append(" ".join(sentence).capitalize() + ".")
        paras, cur = [], []
        for s in out:  # paragraphs of ~5 sentences, so the duplicate finder has blocks
            cur.append(s)
            if len(cur) == 5:
                paras.append(" ".join(cur))
                cur = []
        if cur:
            paras.append(" ".join(cur))
        return "\n\n".join(paras)

    def code(self, lines: int) -> str:
        r, out = self.rng, []
        self.n += 1
        for i in range(lines):
            k = r.randint(0, 999)
            kind = i % 6
            if kind == 0:
                out.append(f"def {r.choice(_WORDS)}_{k}(arg_{k % 7}, value={k}):")
            elif kind == 1:
                out.append(f'    """{self.prose(8).rstrip(".")}."""')
            elif kind == 2:
                out.append(f"    result = helper_{k}(arg_{k % 7}, {r.random():.4f})")
            elif kind == 3:
                out.append(f"    if result > {k} and not cache.get('{r.choice(_WORDS)}_{k}'):")
            elif kind == 4:
                out.append(f"        raise ValueError(f'bad {{result}} in file_{self.n}.py')")
            else:
                out.append("    return result\n")
        return "\n".join(out)


TOOL_NAMES = [
    "read_file",
    "write_file",
    "list_dir",
    "grep",
    "run_tests",
    "run_shell",
    "search_web",
    "edit_file",
]


def tool_schemas(gen: Gen, count: int) -> list[dict]:
    out = []
    for name in TOOL_NAMES[:count]:
        out.append(
            {
                "name": name,
                "description": gen.prose(40),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": gen.prose(12)},
                        "pattern": {"type": "string", "description": gen.prose(10)},
                        "limit": {"type": "integer", "description": gen.prose(8)},
                    },
                    "required": ["path"],
                },
            }
        )
    return out


def new_turn(gen: Gen, i: int, result_tokens: int, earlier: list[str]) -> dict:
    """One agent step: assistant text, one tool call, its result (~result_tokens)."""
    name = TOOL_NAMES[i % len(TOOL_NAMES)]
    if earlier and i % 20 == 7:  # agents re-read files: a duplicated block now and then
        result = gen.rng.choice(earlier)
    else:
        result = gen.code(max(result_tokens // 14, 3))
        earlier.append(result)
    return {
        "text": gen.prose(30),
        "call_id": f"call_{i:05d}",
        "tool": name,
        "args": {"path": f"src/pkg/module_{i}.py", "limit": 200},
        "result": result,
        "user": gen.prose(25) if i % 10 == 0 else None,
    }


def chat_request(system: str, tools: list[dict], first: str, turns: list[dict]) -> dict:
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": first}]
    for t in turns:
        msgs.append(
            {
                "role": "assistant",
                "content": t["text"],
                "tool_calls": [
                    {
                        "id": t["call_id"],
                        "type": "function",
                        "function": {"name": t["tool"], "arguments": json.dumps(t["args"])},
                    }
                ],
            }
        )
        msgs.append({"role": "tool", "tool_call_id": t["call_id"], "content": t["result"]})
        if t["user"]:
            msgs.append({"role": "user", "content": t["user"]})
    return {
        "model": "gpt-4o",
        "messages": msgs,
        "tools": [{"type": "function", "function": s} for s in tools],
        "stream": True,
    }


def anthropic_request(system: str, tools: list[dict], first: str, turns: list[dict]) -> dict:
    msgs: list[dict] = [{"role": "user", "content": first}]
    for t in turns:
        msgs.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": t["text"]},
                    {"type": "tool_use", "id": t["call_id"], "name": t["tool"], "input": t["args"]},
                ],
            }
        )
        content: list[dict] = [
            {"type": "tool_result", "tool_use_id": t["call_id"], "content": t["result"]}
        ]
        if t["user"]:
            content.append({"type": "text", "text": t["user"]})
        msgs.append({"role": "user", "content": content})
    if msgs[-1]["role"] == "user" and isinstance(msgs[-1]["content"], list):
        msgs[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "tools": [
            {"name": s["name"], "description": s["description"], "input_schema": s["parameters"]}
            for s in tools
        ],
        "messages": msgs,
        "stream": True,
    }


BUILDERS = {"chat": chat_request, "anthropic": anthropic_request}


class Conversation:
    """A growing agent conversation; token counts kept incrementally (raw tiktoken, not
    the cache under test)."""

    def __init__(self, seed: int, system_words: int, tools: int, result_tokens: int) -> None:
        from addon.analysis import tokens

        self.gen = Gen(seed)
        self.enc = tokens.encoding_for("openai", "gpt-4o")
        self.system = self.gen.prose(system_words)
        self.tools = tool_schemas(self.gen, tools)
        self.first = self.gen.prose(60)
        self.turns: list[dict] = []
        self.earlier: list[str] = []
        self.result_tokens = result_tokens
        self.tokens = self._n(self.system) + self._n(self.first) + self._n(json.dumps(self.tools))
        self.turn_tokens: list[int] = []

    def _n(self, text: str) -> int:
        return len(self.enc.encode_ordinary(text))

    def add_turn(self) -> int:
        t = new_turn(self.gen, len(self.turns), self.result_tokens, self.earlier)
        self.turns.append(t)
        n = sum(self._n(x) for x in (t["text"], t["result"], json.dumps(t["args"]), t["tool"]))
        n += self._n(t["user"]) if t["user"] else 0
        n += 12  # message framing
        self.tokens += n
        self.turn_tokens.append(n)
        return n

    def request(self, shape: str) -> dict:
        return BUILDERS[shape](self.system, self.tools, self.first, self.turns)


def sized_conversation(target: int, seed: int) -> Conversation:
    system_words = min(max(target // 20, 150), 2500)
    c = Conversation(
        seed,
        system_words,
        3 if target <= 2000 else 8,
        result_tokens=max(min(target // 40, 2500), 120),
    )
    while c.tokens < target:
        c.add_turn()
    return c


def make_trace(shape: str, request: dict, prompt_tokens: int):
    from storage.trace import Trace

    provider, model, api = SHAPES[shape]
    return Trace(
        provider=provider,
        host="api.openai.com" if provider == "openai" else "api.anthropic.com",
        endpoint="/v1/chat/completions" if api == "chat" else "/v1/messages",
        api=api,
        model=model,
        status=200,
        streamed=True,
        prompt_tokens=prompt_tokens,
        completion_tokens=150,
        cached_tokens=0,
        cache_write_tokens=0 if provider == "openai" else None,
        usage_source="provider",
        request=request,
        response={"choices": [{"message": {"role": "assistant", "content": "Done."}}]}
        if api == "chat"
        else {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
    )


def time_call(fn, cold: bool) -> float:
    from addon.analysis import tokens

    if cold:
        tokens.clear_cache()
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure_sizes(sizes: list[int], reps: dict[int, int], max_s: float) -> list[dict]:
    from addon.analysis.attribution import attribute
    from addon.analysis.profile import profile

    rows = []
    for target in sizes:
        conv = sized_conversation(target, seed=target)
        for shape in SHAPES:
            provider, model, api = SHAPES[shape]
            req = conv.request(shape)
            n = reps[target]
            body_kb = len(json.dumps(req)) / 1024

            def attr(req=req, provider=provider, model=model, api=api, total=conv.tokens):
                attribute(api, req, provider=provider, model=model, prompt_tokens=total)

            def prof(req=req, shape=shape, total=conv.tokens):
                profile(make_trace(shape, req, total))

            row = {
                "shape": shape,
                "target_tokens": target,
                "tokens": conv.tokens,
                "body_kb": round(body_kb, 1),
                "reps": n,
            }
            started = time.monotonic()
            for label, fn in (("attribute", attr), ("profile", prof)):
                cold, warm = [], []
                for _ in range(n):
                    cold.append(time_call(fn, cold=True))
                    if time.monotonic() - started > max_s:
                        break
                fn()  # warm the cache for this request
                for _ in range(n):
                    warm.append(time_call(fn, cold=False))
                    if time.monotonic() - started > max_s:
                        break
                row[f"{label}_cold_ms"] = median(cold)
                row[f"{label}_warm_ms"] = median(warm)
                row[f"{label}_cold_all_ms"] = [round(x, 3) for x in cold]
            row["cold_us_per_1k_tokens"] = row["attribute_cold_ms"] / conv.tokens * 1e6
            rows.append(row)
            print(
                f"  {shape:9} {conv.tokens:>8,} tokens: attribute cold "
                f"{row['attribute_cold_ms']:8.2f} ms, warm {row['attribute_warm_ms']:7.2f} ms; "
                f"profile cold {row['profile_cold_ms']:8.2f} ms, "
                f"warm {row['profile_warm_ms']:7.2f} ms",
                flush=True,
            )
    return rows


def agent_run(shape: str, turns: int, cold_every: int) -> dict:
    """Call t = history of t-1 turns + 1 new turn; warm cache carried along; cold samples."""
    from addon.analysis import tokens
    from addon.analysis.profile import profile

    conv = Conversation(seed=4242, system_words=1200, tools=8, result_tokens=420)
    tokens.clear_cache()
    warm: list[dict] = []
    for t in range(1, turns + 1):
        new = conv.add_turn()
        body = json.dumps(conv.request(shape)).encode()
        t0 = time.perf_counter()
        req = json.loads(body)  # fresh objects, as the writer gets them
        parse_ms = (time.perf_counter() - t0) * 1000
        trace = make_trace(shape, req, conv.tokens)
        t0 = time.perf_counter()
        profile(trace)
        ms = (time.perf_counter() - t0) * 1000
        warm.append(
            {
                "turn": t,
                "history_tokens": conv.tokens - new,
                "new_tokens": new,
                "warm_ms": ms,
                "parse_ms": parse_ms,
            }
        )
    # Cold samples, replayed afterwards so they never disturb the warm sequence.
    cold: dict[int, float] = {}
    replay = Conversation(seed=4242, system_words=1200, tools=8, result_tokens=420)
    samples = {1, turns, *range(cold_every, turns + 1, cold_every)}
    for t in range(1, turns + 1):
        replay.add_turn()
        if t in samples:
            req = replay.request(shape)
            tokens.clear_cache()
            t0 = time.perf_counter()
            profile(make_trace(shape, req, replay.tokens))
            cold[t] = (time.perf_counter() - t0) * 1000
    for row in warm:
        row["cold_ms"] = cold.get(row["turn"])
    return {"shape": shape, "turns": warm, "final_tokens": conv.tokens}


def writer_trace(calls: int) -> dict:
    """Per-call extraction and analysis of the writer's realistic trace, warm (the
    first run of calls fills the caches, as the writer's first minute would)."""
    from addon.analysis.profile import profile
    from addon.extract import build_trace
    from bench.bench_writes import realistic_exchange

    exchanges = [realistic_exchange(i) for i in range(calls + 20)]
    for ex in exchanges[:20]:
        trace, _ = build_trace(ex)
        profile(trace)
    parse, extract, analysis = [], [], []
    for ex in exchanges[20:]:
        t0 = time.perf_counter()
        json.loads(ex.request_body)
        t1 = time.perf_counter()
        trace, _ = build_trace(ex)
        t2 = time.perf_counter()
        profile(trace)
        t3 = time.perf_counter()
        parse.append((t1 - t0) * 1e6)
        extract.append((t2 - t1) * 1e6)
        analysis.append((t3 - t2) * 1e6)
    return {
        "calls": calls,
        "request_parse_us": median(parse),
        "extract_us": median(extract),
        "profile_us": median(analysis),
    }


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys on xs."""
    if len(xs) < 2:
        return float("nan")
    return statistics.linear_regression(xs, ys).slope


def _top(prof: cProfile.Profile, top: int) -> list[dict]:
    st = pstats.Stats(prof)
    entries = []
    for (file, line, fn), (cc, _nc, tt, ct, _callers) in st.stats.items():  # type: ignore
        short = file.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        entries.append(
            {
                "function": f"{short}:{line}({fn})" if line else fn,
                "calls": cc,
                "self_ms": tt * 1000,
                "cumulative_ms": ct * 1000,
            }
        )
    return sorted(entries, key=lambda e: e["self_ms"], reverse=True)[:top]


def profile_cold(shape: str, target: int, top: int = 12) -> list[dict]:
    """cProfile of one cold attribution of a `target`-token request: top functions."""
    from addon.analysis import tokens
    from addon.analysis.attribution import attribute

    conv = sized_conversation(target, seed=target)
    req = conv.request(shape)
    provider, model, api = SHAPES[shape]
    tokens.clear_cache()
    prof = cProfile.Profile()
    prof.enable()
    attribute(api, req, provider=provider, model=model, prompt_tokens=conv.tokens)
    prof.disable()
    return _top(prof, top)


def profile_warm_turn(shape: str, turns: int, top: int = 12) -> list[dict]:
    """cProfile of the full analysis of an agent run's last call, history already seen:
    what is left that grows with the history."""
    from addon.analysis import tokens
    from addon.analysis.profile import profile

    conv = Conversation(seed=4242, system_words=1200, tools=8, result_tokens=420)
    for _ in range(turns - 1):
        conv.add_turn()
    tokens.clear_cache()
    parsed = json.loads(json.dumps(conv.request(shape)))  # fresh objects, as in the writer
    profile(make_trace(shape, parsed, conv.tokens))  # calls 1..t-1, in one go
    conv.add_turn()
    trace = make_trace(shape, json.loads(json.dumps(conv.request(shape))), conv.tokens)
    prof = cProfile.Profile()
    prof.enable()
    profile(trace)
    prof.disable()
    return _top(prof, top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000,500000")
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--cold-every", type=int, default=20)
    ap.add_argument("--max-seconds-per-case", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help="up to 100k tokens, a 50-turn run")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.turns, args.cold_every = "1000,10000,100000", 50, 10
    sizes = [int(s) for s in args.sizes.split(",")]
    reps = {s: (51 if s <= 2000 else 21 if s <= 20000 else 11 if s <= 200000 else 5) for s in sizes}
    if args.quick:
        reps = {s: 3 for s in sizes}
    t_start = time.monotonic()
    facts = machine_facts()
    print_machine(facts)

    with temp_home():
        from addon.analysis import tokens
        from addon.analysis.profile import profile

        for shape in SHAPES:  # load encodings and prices before any clock runs
            tokens.encoding_for(*SHAPES[shape][:2])
            profile(make_trace(shape, Conversation(1, 50, 1, 100).request(shape), 1000))
        tokens.clear_cache()
        print("analysis by request size (median ms) ...", flush=True)
        size_rows = measure_sizes(sizes, reps, args.max_seconds_per_case)
        print(f"a {args.turns}-turn agent run per shape ...", flush=True)
        runs = [agent_run(shape, args.turns, args.cold_every) for shape in SHAPES]
        print("the writer's realistic trace ...", flush=True)
        writer = writer_trace(100 if args.quick else 400)
        hot = None
        over = [
            r
            for r in size_rows
            if r["target_tokens"] == 100_000 and r["attribute_cold_ms"] > TARGET_MS
        ]
        if over:
            hot = {r["shape"]: profile_cold(r["shape"], 100_000) for r in over}
        warm_top = profile_warm_turn("chat", args.turns)

    print_table(
        "Attribution and full analysis by request size (ms, median; cold = empty token cache)",
        [
            "shape",
            "tokens",
            "body KB",
            "attr cold",
            "attr warm",
            "profile cold",
            "profile warm",
            "cold us/1k tok",
        ],
        [
            [
                r["shape"],
                r["tokens"],
                r["body_kb"],
                r["attribute_cold_ms"],
                r["attribute_warm_ms"],
                r["profile_cold_ms"],
                r["profile_warm_ms"],
                r["cold_us_per_1k_tokens"],
            ]
            for r in size_rows
        ],
    )
    targets = [
        [
            r["shape"],
            r["tokens"],
            f"{r['attribute_cold_ms']:.1f} ms cold",
            f"{r['attribute_warm_ms']:.1f} ms warm",
            verdict(r["attribute_cold_ms"] <= TARGET_MS),
        ]
        for r in size_rows
        if r["target_tokens"] == 100_000
    ]
    if targets:
        print_table(
            "Target: attribution of a 100k-token request <= 40 ms",
            ["shape", "tokens", "cold", "warm", "verdict (cold)"],
            targets,
        )

    run_summary = []
    for run in runs:
        rows = run["turns"]
        sampled = [r for r in rows if r["cold_ms"] is not None]
        table = [
            [
                r["turn"],
                r["history_tokens"],
                r["new_tokens"],
                r["parse_ms"],
                r["warm_ms"],
                r["cold_ms"],
            ]
            for r in sampled
        ]
        print_table(
            f"{run['shape']}: {len(rows)}-turn agent run, analysis (profile) per call, ms",
            ["turn", "history tok", "new tok", "JSON parse", "warm", "cold"],
            table,
        )
        # Slopes from turn 2: the run's first call has nothing cached to reuse.
        hist = [r["history_tokens"] / 1000 for r in rows[1:]]
        warm_ms = [r["warm_ms"] for r in rows[1:]]
        first = median(warm_ms[: max(len(rows) // 10, 1)])
        last = median(warm_ms[-max(len(rows) // 10, 1) :])
        s = {
            "shape": run["shape"],
            "turns": len(rows),
            "final_tokens": run["final_tokens"],
            "warm_ms_first_10pct": first,
            "warm_ms_last_10pct": last,
            "warm_slope_ms_per_1k_history": slope(hist, warm_ms),
            "parse_slope_ms_per_1k_history": slope(hist, [r["parse_ms"] for r in rows[1:]]),
            "cold_slope_ms_per_1k_history": slope(
                [r["history_tokens"] / 1000 for r in sampled], [r["cold_ms"] for r in sampled]
            ),
            "cold_ms_last": sampled[-1]["cold_ms"] if sampled else None,
        }
        run_summary.append(s)
    print_table(
        "Agent run: does the cost follow the new messages? (slopes: ms per 1k tokens of history)",
        [
            "shape",
            "turns",
            "final tokens",
            "warm first 10%",
            "warm last 10%",
            "warm slope",
            "parse slope",
            "cold slope",
            "cold last",
        ],
        [
            [
                s["shape"],
                s["turns"],
                s["final_tokens"],
                s["warm_ms_first_10pct"],
                s["warm_ms_last_10pct"],
                s["warm_slope_ms_per_1k_history"],
                s["parse_slope_ms_per_1k_history"],
                s["cold_slope_ms_per_1k_history"],
                s["cold_ms_last"],
            ]
            for s in run_summary
        ],
    )
    print_table(
        "The writer's realistic trace, per call, warm (us, median)",
        ["calls", "request JSON parse", "extract (build_trace)", "analysis (profile)"],
        [[writer["calls"], writer["request_parse_us"], writer["extract_us"], writer["profile_us"]]],
    )
    if hot:
        for shape, top in hot.items():
            print_table(
                f"Where a cold 100k-token {shape} attribution spends its time (cProfile)",
                ["function", "calls", "self ms", "cum ms"],
                [[e["function"][-70:], e["calls"], e["self_ms"], e["cumulative_ms"]] for e in top],
            )
    print_table(
        f"What a warm call still pays for its history: cProfile of turn {args.turns} (chat)",
        ["function", "calls", "self ms", "cum ms"],
        [[e["function"][-70:], e["calls"], e["self_ms"], e["cumulative_ms"]] for e in warm_top],
    )
    settings = {
        "sizes": sizes,
        "reps": reps,
        "turns": args.turns,
        "cold_every": args.cold_every,
        "models": {k: v[1] for k, v in SHAPES.items()},
    }
    results = {
        "sizes": size_rows,
        "agent_runs": runs,
        "agent_summary": run_summary,
        "cold_profile_100k": hot,
        "warm_profile_last_turn": warm_top,
        "writer_trace": writer,
    }
    name = "analysis-quick" if args.quick else "analysis"  # a smoke run keeps the figures
    write_results(name, facts, settings, results, time.monotonic() - t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
