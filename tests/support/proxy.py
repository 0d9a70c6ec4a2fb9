"""Start a real ``mitmdump`` subprocess for end-to-end tests.

    proc = start_mitmdump(tmp_dir, scripts=[REDIRECT_SCRIPT, "addon/llmprof.py"],
                          env={"LLMPROF_TEST_UPSTREAM": upstream.address})
    subprocess.run(["curl", ...], env=proc.env_for_clients())
    rc = proc.stop()            # SIGINT, up to 15 s, then SIGKILL
    assert "..." in proc.log_text()

Options always passed: ``--listen-host 127.0.0.1 -p PORT --set connection_strategy=lazy
--set confdir=<tmp_dir>/mitmconf --ssl-insecure --set termlog_verbosity=info --set flow_detail=0``
(no ``-q``, so addon log lines at info and above land in the log file). mitmdump 11 cannot report
an ephemeral port, so a free port is picked (bind 0, close) and the start is retried on collision.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIRECT_SCRIPT = Path(__file__).resolve().with_name("redirect.py")
MITMDUMP = Path(sys.executable).with_name("mitmdump")
PROXY_ENV_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)

_live: set[subprocess.Popen] = set()
_counter = itertools.count()


def _kill_leftovers() -> None:  # last resort if a test run is interrupted
    for proc in list(_live):
        with contextlib.suppress(Exception):
            proc.kill()
            proc.wait(5)


atexit.register(_kill_leftovers)


def _die_with_parent() -> None:  # runs in the child (Linux): SIGTERM when pytest dies
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class MitmdumpProcess:
    def __init__(self, popen: subprocess.Popen, port: int, confdir: Path, log_file: Path):
        self.popen = popen
        self.port = port
        self.confdir = confdir
        self.log_file = log_file
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def ca_cert(self) -> Path:
        """The CA clients must trust (mitmproxy-ca-cert.pem in the confdir)."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env_for_clients(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: os.environ) plus the proxy and CA variables for curl, httpx,
        requests and the SDKs. NO_PROXY/ALL_PROXY are set to "" (= unset for every client).
        Pass ``base={}`` to get only the overlay (e.g. for ``monkeypatch.setenv``)."""
        env = dict(os.environ if base is None else base)
        ca = str(self.ca_cert)
        env.update(
            {
                "HTTPS_PROXY": self.proxy_url,
                "HTTP_PROXY": self.proxy_url,
                "https_proxy": self.proxy_url,
                "http_proxy": self.proxy_url,
                "ALL_PROXY": "",
                "all_proxy": "",
                "NO_PROXY": "",
                "no_proxy": "",
                "SSL_CERT_FILE": ca,
                "REQUESTS_CA_BUNDLE": ca,
                "CURL_CA_BUNDLE": ca,
            }
        )
        return env

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        """Wait until ``needle`` appears in the log; return the log text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not in mitmdump log; tail:\n{self.log_tail()}")
            time.sleep(0.05)

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT (mitmdump's clean shutdown, runs addons' ``done``), wait up to ``timeout``
        seconds, then SIGKILL. Returns the exit code (negative = killed by that signal)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        _live.discard(self.popen)
        self.returncode = self.popen.returncode
        return self.returncode


def start_mitmdump(
    tmp_dir: str | os.PathLike,
    scripts: Sequence[str | os.PathLike] = (),
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    confdir: str | os.PathLike | None = None,
    timeout: float = 20.0,
    attempts: int = 3,
) -> MitmdumpProcess:
    """Start mitmdump with ``scripts`` (``-s``, in this order) and wait until its port accepts
    connections and its CA file exists. ``env`` is added to os.environ (proxy variables are
    removed first, so mitmdump itself never uses a proxy). Logs go to ``<tmp_dir>/mitmdump-N.log``.
    """
    tmp = Path(tmp_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    conf = Path(confdir) if confdir is not None else tmp / "mitmconf"
    conf.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if k not in PROXY_ENV_VARS}
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.update(env or {})

    last_error = ""
    for _ in range(attempts):
        port = free_port()
        log_file = tmp / f"mitmdump-{next(_counter)}.log"
        cmd = [
            str(MITMDUMP),
            "--listen-host",
            "127.0.0.1",
            "-p",
            str(port),
            "--set",
            "connection_strategy=lazy",
            "--set",
            f"confdir={conf}",
            "--ssl-insecure",
            "--set",
            "termlog_verbosity=info",
            "--set",
            "flow_detail=0",
        ]
        for script in scripts:
            cmd += ["-s", str(script)]
        cmd += list(extra_args)
        with open(log_file, "wb") as log:
            popen = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        _live.add(popen)
        proc = MitmdumpProcess(popen, port, conf, log_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                break
            if proc.ca_cert.exists() and _port_open(port):
                return proc
            time.sleep(0.05)
        rc = proc.stop(timeout=5)
        last_error = f"mitmdump (rc={rc}) not ready on port {port}; log tail:\n{proc.log_tail()}"
        if "address already in use" not in proc.log_text().lower():
            break  # not a port collision: retrying would not help
    raise RuntimeError(last_error)
