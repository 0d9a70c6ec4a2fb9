"""Client-side helpers shared by the end-to-end tests: requests in each provider's
shape, auth headers (dummy keys), curl invocations and a tiny SSE splitter."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import openai._base_client
import pytest

# The SDKs ship their own httpx fork (httpx2); their http_client= must be one of its clients.
SDK_HTTPX = getattr(openai._base_client, "httpx2", httpx)

API_KEY = "sk-test-not-a-real-key-12345"
URLS = {
    "openai": "https://api.openai.com/v1/chat/completions",
    "anthropic": "https://api.anthropic.com/v1/messages",
}
# Token controls in every request, so the usage checks cover cached/reasoning/cache-write too.
FAKE_HEADERS = {
    "openai": {"x-fake-cached": "1500", "x-fake-reasoning": "4"},
    "anthropic": {"x-fake-cached": "1500", "x-fake-cache-write": "100"},
}
CASES = [
    pytest.param("openai", False, id="openai-json"),
    pytest.param("openai", True, id="openai-sse"),
    pytest.param("anthropic", False, id="anthropic-json"),
    pytest.param("anthropic", True, id="anthropic-sse"),
]


def make_request(provider: str, stream: bool, text: str = "Say hello, harness.") -> dict:
    if provider == "openai":
        body: dict = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": text},
            ],
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": text}],
    }
    if stream:
        body["stream"] = True
    return body


def auth_headers(provider: str) -> dict[str, str]:
    if provider == "openai":
        return {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    return {
        "x-api-key": API_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, []
        for line in block.decode().split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, "\n".join(data)))
    return events


def run_curl(args: list[str], out: Path, env: dict | None = None) -> tuple[int, int, bytes]:
    """Returns (curl exit code, HTTP status, body bytes as received)."""
    proc = subprocess.run(
        ["curl", "-sS", "-N", "--max-time", "20", "-o", str(out), "-w", "%{http_code}", *args],
        capture_output=True,
        env=env,
        timeout=30,
    )
    return proc.returncode, int(proc.stdout or 0), out.read_bytes() if out.exists() else b""


def curl_post(url: str, request: dict, headers: dict) -> list[str]:
    args = ["-X", "POST", url, "--data-binary", json.dumps(request)]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    return args
