"""`make run`: the proxy (mitmdump + the addon) and the API, together, in the foreground.

Starts `mitmdump -s addon/llmprof.py`, waits until the store it writes is ready,
starts `python -m api` on the same store, prints how to point clients at the
proxy, and on Ctrl-C (or SIGTERM) stops both cleanly: nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import storage

SCRIPT = Path(__file__).resolve().parent / "llmprof.py"


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_store(url: str, proc: subprocess.Popen, timeout: float = 20) -> bool:
    async def probe() -> None:
        s = await storage.open_store(url, readonly=True)
        await s.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            asyncio.run(probe())
            return True
        except Exception:  # noqa: BLE001 - not ready yet
            time.sleep(0.2)
    return False


def stop(procs: list[subprocess.Popen], timeout: float = 15) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make run", description=__doc__)
    ap.add_argument("--proxy-host", default="127.0.0.1")
    ap.add_argument("--proxy-port", type=int, default=8080)
    ap.add_argument("--api-host", default="127.0.0.1")
    ap.add_argument("--api-port", type=int, default=8000)
    ap.add_argument("--db-url", default=None, help="default: $LLMPROF_DB_URL, else the SQLite file")
    ap.add_argument(
        "--confdir",
        default=str(Path.home() / ".mitmproxy"),
        help="mitmproxy's folder: its CA lives here",
    )
    args = ap.parse_args(argv)
    try:
        url = storage.resolve_db_url(args.db_url)
        storage.make_store(url)
    except (storage.StoreError, RuntimeError) as e:
        print(f"llmprof: {e}", file=sys.stderr)
        return 2
    for what, host, port in (
        ("proxy", args.proxy_host, args.proxy_port),
        ("API", args.api_host, args.api_port),
    ):
        if not port_free(host, port):
            print(
                f"llmprof: port {host}:{port} for the {what} is in use: stop what holds it "
                f"or pick another (make run {what.upper()}_PORT=...)",
                file=sys.stderr,
            )
            return 2
    bindir = Path(sys.executable).parent
    env = {**os.environ, "LLMPROF_DB_URL": url}
    procs: list[subprocess.Popen] = []
    # Explicit handlers: a shell may start us with SIGINT ignored (a background job).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        proxy = subprocess.Popen(
            [
                str(bindir / "mitmdump"),
                "-s",
                str(SCRIPT),
                "--listen-host",
                args.proxy_host,
                "-p",
                str(args.proxy_port),
                "--set",
                f"confdir={args.confdir}",
                "--set",
                "flow_detail=0",
            ],
            env=env,
        )
        procs.append(proxy)
        if not (wait_port(args.proxy_host, args.proxy_port, proxy) and wait_store(url, proxy)):
            print("llmprof: the proxy did not start; see its messages above", file=sys.stderr)
            return 1
        api = subprocess.Popen(
            [sys.executable, "-m", "api", "--host", args.api_host, "--port", str(args.api_port)],
            env=env,
        )
        procs.append(api)
        if not wait_port(args.api_host, args.api_port, api):
            print("llmprof: the API did not start; see its messages above", file=sys.stderr)
            return 1
        ca = Path(args.confdir) / "mitmproxy-ca-cert.pem"
        proxy_url = f"http://{args.proxy_host}:{args.proxy_port}"
        print(
            f"""
llmprof is recording to {url.split("@")[-1]}
  Point a terminal's clients at the proxy:
    export HTTPS_PROXY={proxy_url}
    export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca} NODE_EXTRA_CA_CERTS={ca}
    curl --cacert {ca} ...
  Dashboard: http://{args.api_host}:{args.api_port}/
  API:       http://{args.api_host}:{args.api_port}/api/traces   (docs at /docs)
  Ctrl-C stops both.
""",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.3)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
