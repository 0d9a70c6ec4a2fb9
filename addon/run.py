"""`make run` (= `llmprof up`): the proxy (mitmdump + the addon) and the API together.

This module holds the process plumbing `llmprof up` (addon/cli.py) uses: port
checks, waiting for the proxy and its store, and a clean stop of both, so Ctrl-C
(or SIGTERM) leaves nothing running.
"""

from __future__ import annotations

import asyncio
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
    """`make run` is `llmprof up`: one implementation (addon/cli.py)."""
    from .cli import main as cli_main

    return cli_main(["up", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
