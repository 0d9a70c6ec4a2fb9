"""TEST-ONLY mitmproxy addon: send LLM-host connections to the local fake upstream.

Load it FIRST (``mitmdump -s tests/support/redirect.py -s addon/llmprof.py``) together with
``--set connection_strategy=lazy --ssl-insecure``. In lazy mode mitmproxy opens the upstream
connection only when a request needs it; this ``server_connect`` hook then swaps the TCP address
to ``$LLMPROF_TEST_UPSTREAM`` ("127.0.0.1:PORT"). The SNI and ``flow.request.host`` /
``pretty_host`` stay the real name (api.openai.com, ...), so the code under test sees exactly
what it would see in production.

Redirected hosts: api.openai.com, api.anthropic.com, googleapis.com and any ``*.googleapis.com``,
plus the comma- or space-separated entries of ``$LLMPROF_TEST_REDIRECT_HOSTS`` (an entry
``*.example.com`` matches every subdomain; a bare ``*`` matches every host).
"""

from __future__ import annotations

import logging
import os

from mitmproxy import connection
from mitmproxy.proxy import server_hooks

DEFAULT_HOSTS = ("api.openai.com", "api.anthropic.com", "googleapis.com", "*.googleapis.com")

logger = logging.getLogger(__name__)


def _patterns() -> list[str]:
    extra = os.environ.get("LLMPROF_TEST_REDIRECT_HOSTS", "").replace(",", " ").split()
    return [p.lower().rstrip(".") for p in (*DEFAULT_HOSTS, *extra)]


def _matches(host: str, patterns: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _target() -> tuple[str, int]:
    value = os.environ.get("LLMPROF_TEST_UPSTREAM", "")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeError(f"LLMPROF_TEST_UPSTREAM must be 'HOST:PORT', got {value!r}")
    return host, int(port)


class Redirect:
    def __init__(self) -> None:
        self.target = _target()
        self.patterns = _patterns()

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server: connection.Server = data.server
        if not server.address:
            return
        host, port = server.address[0], server.address[1]
        if server.address == self.target or not _matches(str(host), self.patterns):
            return
        server.address = self.target
        logger.info(f"llmprof-test-redirect: {host}:{port} -> {self.target[0]}:{self.target[1]}")


addons = [Redirect()]
