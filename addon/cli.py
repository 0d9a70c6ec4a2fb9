"""`llmprof`: run the profiler, route a terminal through it, read what it recorded.

    llmprof up       the proxy + the API and dashboard, in the foreground (what `make run` does)
    llmprof env      the shell lines that send a terminal's LLM clients through the proxy
    llmprof traces   recent calls: time, model, tokens, cost, top component
    llmprof summary  totals, spend by model, what could be cut

Errors are one line on stderr saying what to do, with exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import storage
from storage import StoreError

from . import run
from .hosts import HostMatcher

SHELLS = ("bash", "zsh", "fish")
CA_FILE = "mitmproxy-ca-cert.pem"
TRUST_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


class CliError(Exception):
    """A failure the user can fix: printed as one line, exit status 2."""


# ---- formatting ------------------------------------------------------------------
def usd(v: float | None) -> str:
    """Dollars as the dashboard shows them: cents from $1, 4 decimals from a cent, else 6."""
    if v is None:
        return "-"
    if v == 0:
        return "$0.00"
    a, sign = abs(v), "-" if v < 0 else ""
    if a < 0.0000005:
        return f"{sign}<$0.000001"
    if a >= 1:
        return f"{sign}${a:,.2f}"
    text = re.sub(r"(\.\d\d\d*?)0+$", r"\1", f"{a:.{4 if a >= 0.01 else 6}f}")
    return f"{sign}${text}"


def count(v: float | None) -> str:
    return "-" if v is None else f"{round(v):,}"


def pct(frac: float | None) -> str:
    return "-" if frac is None else f"{frac * 100:.1f}%"


def table(header: Sequence[str], rows: list[Sequence[str]], right: set[int]) -> list[str]:
    """Aligned columns (`right`: indexes of right-aligned columns), no trailing spaces."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [
            str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i])
            for i, c in enumerate(r)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def top_component(components: dict[str, int] | None) -> str:
    if not components:
        return "-"
    total = sum(components.values()) or 1
    name, n = max(components.items(), key=lambda kv: kv[1])
    return f"{name} {pct(n / total)}"


# ---- store access ----------------------------------------------------------------
async def _read(url: str | None, fn) -> Any:
    store = await storage.open_store(url, readonly=True)
    try:
        return await fn(store)
    finally:
        await store.close()


def read(url: str | None, fn) -> Any:
    """Run `fn(store)` on the store opened read-only; StoreError becomes a CliError."""
    try:
        return asyncio.run(_read(url, fn))
    except (StoreError, RuntimeError, OSError) as e:
        raise CliError(str(e).replace("(make run)", "(llmprof up)")) from None


# ---- traces ----------------------------------------------------------------------
def traces_lines(items: list[dict[str, Any]]) -> list[str]:
    if not items:
        return ["No calls recorded yet: start `llmprof up` and point a client at it (llmprof env)."]
    rows = []
    for t in items:
        top = top_component(t.get("components"))
        if t.get("outcome") != "ok":
            top = f"{t['outcome']} {t.get('status') or ''}".strip()
        rows.append(
            (
                str(t["id"]),
                datetime.fromtimestamp(t["ts"]).strftime("%Y-%m-%d %H:%M:%S"),
                t.get("model") or t.get("requested_model") or "(unknown)",
                count(t.get("prompt_tokens")),
                count(t.get("completion_tokens")),
                usd(t.get("cost_usd")),
                top,
            )
        )
    header = ("ID", "TIME", "MODEL", "IN", "OUT", "COST", "TOP COMPONENT")
    return table(header, rows, right={0, 3, 4, 5})


def cmd_traces(args: argparse.Namespace) -> int:
    items = read(args.db_url, lambda s: s.recent(limit=args.limit))
    print("\n".join(traces_lines(items)))
    return 0


# ---- summary ---------------------------------------------------------------------
def summary_lines(models: list[dict[str, Any]], rec: dict[str, Any]) -> list[str]:
    if not rec["calls"]:
        return ["No calls recorded yet: start `llmprof up` and point a client at it (llmprof env)."]
    tokens = sum(m["tokens"] for m in models)
    lines = [
        f"{rec['calls']:,} calls, {tokens:,} tokens, {usd(rec['cost_usd'])}"
        + (f" ({rec['unpriced_calls']:,} unpriced)" if rec["unpriced_calls"] else ""),
    ]
    lines += ["", "By model"]
    rows = [
        (
            m["model"] or "(unknown)",
            m["provider"] or "-",
            count(m["calls"]),
            count(m["tokens"]),
            pct(m["cached_tokens"] / m["prompt_tokens"] if m["prompt_tokens"] else None),
            usd(m["cost_usd"])
            + (f" +{m['unpriced_calls']} unpriced" if m["unpriced_calls"] else ""),
        )
        for m in models
    ]
    header = ("MODEL", "PROVIDER", "CALLS", "TOKENS", "CACHED", "COST")
    lines += ["  " + line for line in table(header, rows, right={2, 3, 4, 5})]
    lines.append("")
    src = rec["by_source"]
    if rec["reclaimable_usd"]:
        total = usd(rec["cost_usd"])
        lines.append(f"Reclaimable: {usd(rec['reclaimable_usd'])} ({rec['pct']:.1f}% of {total})")
        caching, dups, tools = (
            usd(src.get(k) or 0) for k in ("caching", "duplicates", "unused_tools")
        )
        lines.append(f"  caching {caching}, duplicates {dups}, unused tools {tools}")
        saves = [f"save {usd(a['save_usd'])}" for a in rec["actions"]]
        width = max(map(len, saves), default=0)
        for i, (a, save) in enumerate(zip(rec["actions"], saves, strict=True), 1):
            n = a["calls"]
            lines.append(f"  {i}. {save.ljust(width)}  {a['action']} ({n:,} call{'s' * (n != 1)})")
    else:
        lines.append("Reclaimable: nothing found to cut.")
    if rec["projectable"] and rec["monthly_reclaimable_usd"] is not None:
        lines.append(f"  About {usd(rec['monthly_reclaimable_usd'])} a month at this rate.")
    else:
        lines.append(
            f"  A monthly projection needs 50 calls over 2 active days "
            f"(now {rec['calls']:,} over {rec['active_days']})."
        )
    if rec.get("unused_tools_pending"):
        lines.append(
            f"  {rec['unused_tools_pending']} shipped tool(s) still being judged "
            "(after 20 calls of their template)."
        )
    return lines


def cmd_summary(args: argparse.Namespace) -> int:
    async def both(store):
        return await store.model_summary(), await store.reclaimable_summary()

    models, rec = read(args.db_url, both)
    print("\n".join(summary_lines(models, rec)))
    return 0


# ---- env -------------------------------------------------------------------------
def default_shell() -> str:
    name = Path(os.environ.get("SHELL", "")).name
    return name if name in SHELLS else "bash"


def ca_path(confdir: str) -> Path:
    return Path(confdir).expanduser() / CA_FILE


def env_lines(shell: str, proxy_url: str, ca: Path) -> list[str]:
    values = [("HTTPS_PROXY", proxy_url), *((v, str(ca)) for v in TRUST_VARS)]
    values.append(("NODE_USE_ENV_PROXY", "1"))  # Node >= 24 reads HTTPS_PROXY only with it
    if shell == "fish":
        return [f"set -gx {k} {_fish_quote(v)}" for k, v in values]
    return [f"export {k}={shlex.quote(v)}" for k, v in values]


def _fish_quote(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cmd_env(args: argparse.Namespace) -> int:
    ca = ca_path(args.confdir)
    if not ca.is_file():
        raise CliError(
            f"no mitmproxy CA at {ca}: run `llmprof up` once to create it"
            + (f" (with --confdir {args.confdir})" if args.confdir != DEFAULT_CONFDIR else "")
        )
    shell = args.shell or default_shell()
    print("\n".join(env_lines(shell, f"http://{args.proxy_host}:{args.proxy_port}", ca)))
    return 0


# ---- up --------------------------------------------------------------------------
async def _probe_writable(url: str) -> None:
    store = await storage.open_store(url)  # creates and migrates, as the proxy will
    await store.close()


def cmd_up(args: argparse.Namespace) -> int:
    try:
        HostMatcher(args.hosts)
    except ValueError as e:
        raise CliError(f"--hosts: {e}") from None
    try:
        url = storage.resolve_db_url(args.db_url)
        storage.make_store(url)
    except (StoreError, RuntimeError) as e:
        raise CliError(str(e)) from None
    if (args.proxy_host, args.proxy_port) == (args.api_host, args.api_port):
        raise CliError(f"the proxy and the API cannot share port {args.api_port}")
    for what, flag, host, port in (
        ("proxy", "--proxy-port", args.proxy_host, args.proxy_port),
        ("API", "--api-port", args.api_host, args.api_port),
    ):
        if not run.port_free(host, port):
            raise CliError(
                f"port {host}:{port} for the {what} is in use: stop what holds it "
                f"or pick another with {flag}"
            )
    try:
        asyncio.run(_probe_writable(url))
    except (StoreError, OSError) as e:
        raise CliError(str(e)) from None
    return _serve(args, url)


def _serve(args: argparse.Namespace, url: str) -> int:
    """Start mitmdump and the API like `make run` (addon/run.py), plus the extra hosts."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "LLMPROF_DB_URL": url}
    confdir = str(Path(args.confdir).expanduser())
    hosts = [a for h in args.hosts for a in ("--set", f"llmprof_hosts={h}")]
    procs: list[subprocess.Popen] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, run._interrupt)
    try:
        proxy = subprocess.Popen(
            [str(bindir / "mitmdump"), "-s", str(run.SCRIPT), "--listen-host", args.proxy_host,
             "-p", str(args.proxy_port), "--set", f"confdir={confdir}", "--set", "flow_detail=0",
             *hosts],
            env=env,
        )  # fmt: skip
        procs.append(proxy)
        if not (
            run.wait_port(args.proxy_host, args.proxy_port, proxy) and run.wait_store(url, proxy)
        ):
            print("llmprof: the proxy did not start; see its messages above", file=sys.stderr)
            return 1
        api = subprocess.Popen(
            [sys.executable, "-m", "api", "--host", args.api_host, "--port", str(args.api_port)],
            env=env,
        )
        procs.append(api)
        if not run.wait_port(args.api_host, args.api_port, api):
            print("llmprof: the API did not start; see its messages above", file=sys.stderr)
            return 1
        proxy_url = f"http://{args.proxy_host}:{args.proxy_port}"
        shell = default_shell()
        lines = env_lines(shell, proxy_url, ca_path(confdir))
        api_url = f"http://{args.api_host}:{args.api_port}"
        print(
            f"llmprof is recording to {url.split('@')[-1]}\n"
            f"  Dashboard: {api_url}/   API: {api_url}/api/traces (docs at /docs)\n"
            f'  Point a terminal\'s clients at the proxy ({shell}; or: eval "$(llmprof env)"):\n'
            + "".join(f"    {line}\n" for line in lines)
            + "  Ctrl-C stops both.",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.3)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        run.stop(procs)


# ---- entry point -------------------------------------------------------------------
DEFAULT_CONFDIR = "~/.mitmproxy"


def _positive(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 500:
        raise argparse.ArgumentTypeError("must be between 1 and 500")
    return n


def _port(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 1-65535")
    return n


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="llmprof",
        description="pprof for your LLM context: record every LLM call, see where the tokens "
        "and dollars go.",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    db_help = "database URL (default: $LLMPROF_DB_URL, else $LLMPROF_HOME/llmprof.db)"
    confdir_help = "mitmproxy's folder, where its CA lives (default: ~/.mitmproxy)"

    up = sub.add_parser("up", help="start the proxy, the API and the dashboard (Ctrl-C stops)")
    up.add_argument("--db-url", default=None, help=db_help)
    up.add_argument("--proxy-host", default="127.0.0.1")
    up.add_argument("--proxy-port", type=_port, default=8080)
    up.add_argument("--api-host", default="127.0.0.1")
    up.add_argument("--api-port", type=_port, default=8000)
    up.add_argument(
        "--hosts",
        action="append",
        default=[],
        metavar="HOST",
        help="another LLM host to record (host, *.domain or host:port); repeat for several",
    )
    up.add_argument("--confdir", default=DEFAULT_CONFDIR, help=confdir_help)
    up.set_defaults(fn=cmd_up)

    env = sub.add_parser("env", help="print the lines that route a terminal through the proxy")
    env.add_argument("--shell", choices=SHELLS, default=None, help="default: from $SHELL")
    env.add_argument("--proxy-host", default="127.0.0.1")
    env.add_argument("--proxy-port", type=_port, default=8080)
    env.add_argument("--confdir", default=DEFAULT_CONFDIR, help=confdir_help)
    env.set_defaults(fn=cmd_env)

    tr = sub.add_parser("traces", help="a table of recent calls")
    tr.add_argument("--limit", "-n", type=_positive, default=20, help="how many (1-500, 20)")
    tr.add_argument("--db-url", default=None, help=db_help)
    tr.set_defaults(fn=cmd_traces)

    sm = sub.add_parser("summary", help="totals, spend by model, what could be cut")
    sm.add_argument("--db-url", default=None, help=db_help)
    sm.set_defaults(fn=cmd_summary)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if not getattr(args, "fn", None):
        ap.print_help()
        return 2
    try:
        return args.fn(args)
    except CliError as e:
        print(f"llmprof: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `llmprof traces | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
