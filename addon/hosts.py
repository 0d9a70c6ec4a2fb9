"""Which connections are LLM traffic. Everything else is not intercepted at all.

Entries are host names (`api.openai.com`), wildcard suffixes (`*.openai.azure.com`,
which match sub-domains only) or `host:port` (a self-hosted server on one port).
Matching is exact and anchored: `notopenai.com.evil` is not `openai.com`.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_HOSTS = ("api.openai.com", "api.anthropic.com")


def _norm(host: str) -> str:
    return host.strip().lower().rstrip(".")


class HostMatcher:
    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.exact: set[str] = set()
        self.suffixes: set[str] = set()
        self.with_port: set[tuple[str, int]] = set()
        for entry in (*DEFAULT_HOSTS, *extra):
            self.add(entry)

    def add(self, entry: str) -> None:
        entry = _norm(entry)
        if not entry:
            raise ValueError("empty host entry")
        host, sep, port = entry.rpartition(":") if entry.count(":") == 1 else ("", "", "")
        if sep:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bad port in host entry {entry!r}")
            self.with_port.add((host, int(port)))
        elif entry.startswith("*."):
            self.suffixes.add(entry[1:])  # keep the dot: ".openai.azure.com"
        elif "*" in entry or "/" in entry:
            raise ValueError(f"bad host entry {entry!r}: use host, *.domain or host:port")
        else:
            self.exact.add(entry)

    def __call__(self, host: str | None, port: int | None = None) -> bool:
        if not host:
            return False
        host = _norm(host)
        if host in self.exact or (host, port) in self.with_port:
            return True
        return any(host.endswith(s) for s in self.suffixes)
