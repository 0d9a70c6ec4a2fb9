"""Which connections are LLM traffic. Everything else is not intercepted at all.

Entries are host names (`api.openai.com`), wildcard suffixes (`*.openai.azure.com`,
which match sub-domains only) or `host:port` (a self-hosted server on one port).
Matching is exact and anchored: `notopenai.com.evil` is not `openai.com`.

The built-in list covers the hosted providers llmprof knows how to name and parse
(see `addon/providers/__init__.py`); `llmprof_hosts` adds more (a team's vLLM, an
internal gateway, `localhost:11434` for Ollama).
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_HOSTS = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",  # Vertex AI, global endpoint
    "*.openai.azure.com",
    "*.services.ai.azure.com",
    "*.cognitiveservices.azure.com",
    "openrouter.ai",
    "api.groq.com",
    "api.mistral.ai",
    "api.deepseek.com",
    "api.together.xyz",
    "api.together.ai",
    "api.fireworks.ai",
    "api.x.ai",
)
# Vertex AI's regional endpoints are `{region}-aiplatform.googleapis.com`. A suffix
# match is still anchored: only Google can name a host under googleapis.com.
DEFAULT_SUFFIXES = ("-aiplatform.googleapis.com",)


def _norm(host: str) -> str:
    return host.strip().lower().rstrip(".")


class HostMatcher:
    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.exact: set[str] = set()
        self.suffixes: set[str] = set(DEFAULT_SUFFIXES)
        self.with_port: set[tuple[str, int]] = set()
        for entry in (*DEFAULT_HOSTS, *extra):
            self.add(entry)

    def add(self, entry: str) -> None:
        entry = _norm(entry)
        if not entry:
            raise ValueError("empty host entry")
        host, sep, port = entry.rpartition(":") if entry.count(":") == 1 else ("", "", "")
        if sep:
            if not port.isdigit() or not 0 < int(port) < 65536 or not host or "*" in host:
                raise ValueError(f"bad port in host entry {entry!r}")
            self.with_port.add((host, int(port)))
        elif entry.startswith("*.") and "*" not in entry[1:] and "/" not in entry:
            self.suffixes.add(entry[1:])  # keep the dot: ".openai.azure.com"
        elif "*" in entry or "/" in entry or " " in entry:
            raise ValueError(f"bad host entry {entry!r}: use host, *.domain or host:port")
        else:
            self.exact.add(entry)

    def __call__(self, host: str | None, port: int | None = None) -> bool:
        if not host:
            return False
        host = _norm(host)
        if host in self.exact or (host, port) in self.with_port:
            return True
        return any(host.endswith(s) and len(host) > len(s) for s in self.suffixes)
