"""The `llmprof` command, run as a subprocess against a seeded SQLite store.

The seed is tests/support/seed.py, dated 2026-01-14/15 UTC (TZ=UTC for the times).
"""

from __future__ import annotations

import calendar
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.seed import seed

LLMPROF = Path(sys.executable).with_name("llmprof")
DAY0 = calendar.timegm((2026, 1, 15, 0, 0, 0))


@pytest.fixture(scope="module")
def db_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'llmprof.db'}"
    seed(url, DAY0)
    return url


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROF_")}
    return {**out, "TZ": "UTC", "LLMPROF_HOME": str(tmp_path / "home"), "SHELL": "/bin/bash"}


def llmprof(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    assert LLMPROF.exists(), f"{LLMPROF} is missing: reinstall the project (make install)"
    return subprocess.run(
        [str(LLMPROF), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_traces_table(db_file: str, env: dict[str, str]) -> None:
    r = llmprof("traces", "--db-url", db_file, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "ID  TIME                 MODEL                  IN  OUT       COST  TOP COMPONENT",
        " 7  2026-01-15 00:05:00  claude-sonnet-4-5   5,000  200    $0.0165  user input 40.0%",
        " 6  2026-01-15 00:04:00  gpt-4o              3,000  100    $0.0085  user input 66.7%",
        " 5  2026-01-15 00:03:00  gpt-4o                  -    -      $0.00  http_error 429",
        " 4  2026-01-15 00:02:00  claude-sonnet-4-5  10,000  500    $0.0228  tool schemas 40.0%",
        " 3  2026-01-15 00:01:00  gpt-4o-mini         4,100  310  $0.000556  tool results 36.6%",
        " 2  2026-01-14 09:01:00  gpt-4o-mini         2,600  220  $0.000372  tool results 30.8%",
        " 1  2026-01-14 09:00:00  gpt-4o-mini         1,200  150   $0.00027  system prompt 41.7%",
    ]
    r = llmprof("traces", "--limit", "2", "--db-url", db_file, env=env)
    assert r.stdout.splitlines() == [
        "ID  TIME                 MODEL                 IN  OUT     COST  TOP COMPONENT",
        " 7  2026-01-15 00:05:00  claude-sonnet-4-5  5,000  200  $0.0165  user input 40.0%",
        " 6  2026-01-15 00:04:00  gpt-4o             3,000  100  $0.0085  user input 66.7%",
    ]


def test_summary(db_file: str, env: dict[str, str]) -> None:
    r = llmprof("summary", "--db-url", db_file, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "7 calls, 27,380 tokens, $0.049",
        "",
        "By model",
        "  MODEL              PROVIDER   CALLS  TOKENS  CACHED       COST",
        "  claude-sonnet-4-5  anthropic      2  15,700   40.0%    $0.0393",
        "  gpt-4o             openai         2   3,100    0.0%    $0.0085",
        "  gpt-4o-mini        openai         3   8,580   38.9%  $0.001198",
        "",
        "Reclaimable: $0.009171 (18.7% of $0.049)",
        "  caching $0.0081, duplicates $0.001071, unused tools $0.00",
        "  1. save $0.0081    Cache the stable prefix (system prompt and tool schemas) "
        "with cache_control (1 call)",
        "  2. save $0.001071  Remove duplicated content: the same block is sent more than "
        "once in a request (1 call)",
        "  A monthly projection needs 50 calls over 2 active days (now 7 over 2).",
    ]


def test_env_lines_for_each_shell(tmp_path: Path, env: dict[str, str]) -> None:
    confdir = tmp_path / "mitm conf"  # a space: the lines must quote it
    confdir.mkdir()
    ca = confdir / "mitmproxy-ca-cert.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    r = llmprof("env", "--confdir", str(confdir), env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "export HTTPS_PROXY=http://127.0.0.1:8080",
        f"export SSL_CERT_FILE='{ca}'",
        f"export REQUESTS_CA_BUNDLE='{ca}'",
        f"export NODE_EXTRA_CA_CERTS='{ca}'",
        "export NODE_USE_ENV_PROXY=1",
    ]
    shown = subprocess.run(
        ["bash", "-c", f'eval "{r.stdout}"; echo "$HTTPS_PROXY|$SSL_CERT_FILE"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == f"http://127.0.0.1:8080|{ca}\n"
    r = llmprof(
        "env", "--shell", "fish", "--proxy-port", "9090", "--confdir", str(confdir), env=env
    )
    assert r.stdout.splitlines() == [
        "set -gx HTTPS_PROXY http://127.0.0.1:9090",
        f"set -gx SSL_CERT_FILE '{ca}'",
        f"set -gx REQUESTS_CA_BUNDLE '{ca}'",
        f"set -gx NODE_EXTRA_CA_CERTS '{ca}'",
        "set -gx NODE_USE_ENV_PROXY 1",
    ]
    assert llmprof("env", "--shell", "zsh", "--confdir", str(confdir), env=env).stdout == (
        llmprof("env", "--shell", "bash", "--confdir", str(confdir), env=env).stdout
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_line_errors(tmp_path: Path, env: dict[str, str]) -> None:
    missing = tmp_path / "none.db"
    cases = [
        (
            ("env", "--confdir", str(tmp_path / "mitm")),
            f"llmprof: no mitmproxy CA at {tmp_path / 'mitm' / 'mitmproxy-ca-cert.pem'}: "
            f"run `llmprof up` once to create it (with --confdir {tmp_path / 'mitm'})",
        ),
        (
            ("traces", "--db-url", f"sqlite:///{missing}"),
            f"llmprof: no llmprof database at {missing}: start the proxy first (llmprof up) "
            "or point LLMPROF_DB_URL at an existing one",
        ),
        (
            ("summary", "--db-url", "postgresql://me@127.0.0.1:1/llmprof"),
            "llmprof: cannot connect to PostgreSQL at 127.0.0.1:1/llmprof: [Errno 111] Connect "
            "call failed ('127.0.0.1', 1): check that the server is running, and the host, "
            "port and database in LLMPROF_DB_URL",
        ),
        (
            ("traces", "--db-url", "mysql://x/y"),
            "llmprof: unsupported database URL 'mysql://x/y': llmprof stores traces in SQLite "
            "or PostgreSQL (sqlite:///ABSOLUTE/PATH.db, sqlite:///./relative.db, "
            "postgresql://..., postgres://...)",
        ),
        (
            ("up", "--hosts", "a/b", "--confdir", str(tmp_path / "mitm")),
            "llmprof: --hosts: bad host entry 'a/b': use host, *.domain or host:port",
        ),
    ]
    for args, line in cases:
        r = llmprof(*args, env=env)
        assert (r.returncode, r.stdout, r.stderr) == (2, "", line + "\n"), args
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = llmprof(
            "up", "--db-url", f"sqlite:///{tmp_path / 'x.db'}", "--proxy-port", str(port),
            "--api-port", str(_free_port()), "--confdir", str(tmp_path / "mitm"), env=env,
        )  # fmt: skip
    assert (r.returncode, r.stderr) == (
        2,
        f"llmprof: port 127.0.0.1:{port} for the proxy is in use: stop what holds it or pick "
        "another with --proxy-port\n",
    )


def test_up_serves_and_stops_on_sigint(tmp_path: Path, env: dict[str, str]) -> None:
    proxy_port, api_port = _free_port(), _free_port()
    confdir = tmp_path / "mitm"
    proc = subprocess.Popen(
        [str(LLMPROF), "up", "--db-url", f"sqlite:///{tmp_path / 'up.db'}",
         "--proxy-port", str(proxy_port), "--api-port", str(api_port),
         "--confdir", str(confdir), "--hosts", "localhost:11434", "--hosts", "*.example.test"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{api_port}/api/health", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health == {"ok": True, "backend": "sqlite", "traces": 0}
        socket.create_connection(("127.0.0.1", proxy_port), timeout=2).close()
        page = httpx.get(f"http://127.0.0.1:{api_port}/", timeout=2)
        assert page.status_code == 200 and "llmprof" in page.text
        assert (confdir / "mitmproxy-ca-cert.pem").is_file()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    assert f"Dashboard: http://127.0.0.1:{api_port}/" in out
    assert f"export HTTPS_PROXY=http://127.0.0.1:{proxy_port}" in out
    assert f"export SSL_CERT_FILE={confdir / 'mitmproxy-ca-cert.pem'}" in out
    deadline = time.monotonic() + 5  # helpers (e.g. multiprocessing's tracker) exit on EOF
    with pytest.raises(ProcessLookupError):  # nothing left in its process group
        while time.monotonic() < deadline:
            os.killpg(proc.pid, 0)
            time.sleep(0.1)
        os.killpg(proc.pid, 0)
    env_out = llmprof("env", "--confdir", str(confdir), env=env)
    assert env_out.returncode == 0 and "SSL_CERT_FILE" in env_out.stdout
