"""The API against the real app: served by uvicorn over a seeded store, read-only,
one error shape, and schemathesis finding no violation of the OpenAPI schema."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

import storage
from api.app import create_app
from storage.trace import Trace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a thread, serving create_app(db_url=...) exactly as `python -m api` does."""

    def __init__(self, db_url: str, token: str | None = None) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(db_url=db_url, token=token),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def seed(url: str) -> None:
    async with storage.make_store(url) as s:
        await s.record_many(
            [
                Trace(
                    uid=f"t{i}",
                    ts=1_780_000_000.0 + i * 3600,
                    provider="openai",
                    model="gpt-4o",
                    endpoint="/v1/chat/completions",
                    api="chat",
                    status=200,
                    prompt_tokens=100 + i,
                    completion_tokens=10,
                    cost_usd=0.001 * i,
                    session_hint=f"run-{i % 3}",
                    route=f"r{i % 2}",
                    route_label=f"template {i % 2}",
                    components={"user input": 100 + i},
                    request={"model": "gpt-4o"},
                    detail={"name": "context", "tokens": 100 + i, "children": []},
                )
                for i in range(12)
            ]
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
    asyncio.run(seed(url))
    server = Server(url)
    yield server
    server.stop()


def test_schemathesis_finds_no_violation(api, tmp_path):
    """Every documented operation, fuzzed from the OpenAPI schema: no 5xx, every
    answer matching its documented shape and status. (The CLI, because the pytest
    plugin of schemathesis 4.32 does not run under pytest 9.)"""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{api.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "passed" in done.stdout.lower()


def test_paging_errors_and_read_only(api):
    with httpx.Client(base_url=api.url) as c:
        first = c.get("/api/traces", params={"limit": 5})
        assert [t["uid"] for t in first.json()] == ["t11", "t10", "t9", "t8", "t7"]
        nxt = first.headers["link"].split(";")[0].strip("<>")
        assert [t["uid"] for t in c.get(nxt).json()] == ["t6", "t5", "t4", "t3", "t2"]
        assert c.get("/api/traces/999").json() == {
            "error": {"status": 404, "code": "not_found", "message": "no trace with id 999"}
        }
        bad = c.get("/api/traces", params={"limit": "lots"}).json()["error"]
        assert bad["status"] == 422 and bad["code"] == "invalid_parameter"
        assert bad["message"].startswith("limit: ")
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = c.request(method, "/api/traces")
            assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        head = c.head("/api/health")
        assert head.status_code == 200 and head.content == b""
        assert c.get("/api/sessions/run-1").json()["turns"] == 4


def test_bearer_token(tmp_path):
    url = f"sqlite:///{tmp_path / 'tok.db'}"
    asyncio.run(seed(url))
    server = Server(url, token="s3cret-token")
    try:
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/api/health").status_code == 200  # liveness stays open
            denied = c.get("/api/traces")
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
            assert (
                c.get("/api/traces", headers={"authorization": "Bearer wrong"}).status_code == 401
            )
            ok = c.get("/api/traces", headers={"authorization": "Bearer s3cret-token"})
            assert ok.status_code == 200 and len(ok.json()) == 12
    finally:
        server.stop()


async def test_the_api_cannot_write(db_url):
    """Read-only at the connection: even a write that bypassed the routes fails."""
    async with storage.make_store(db_url) as writer:
        await writer.record(Trace(uid="w1"))
    async with storage.make_store(db_url, readonly=True) as ro:
        with pytest.raises(storage.StoreError, match="read-only"):
            await ro.record(Trace(uid="w2"))
        if ro.backend == "sqlite":
            import sqlite3

            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await ro.db.execute("DELETE FROM traces")
        else:
            import asyncpg

            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await ro.pool.execute("DELETE FROM traces")
        assert await ro.count() == 1


def test_a_body_json_cannot_carry_still_answers(tmp_path):
    """A request body with NaN and a cut emoji escape (a lone surrogate) is stored as
    sent; its trace still answers 200 with valid JSON (null and U+FFFD)."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    odd = {"temperature": float("nan"), "messages": [{"role": "user", "content": "hi \ud83d"}]}

    async def write() -> int:
        async with storage.make_store(url) as s:
            (trace_id,) = await s.record_many([Trace(uid="odd", request=odd)])
            return trace_id

    trace_id = asyncio.run(write())
    server = Server(url)
    try:
        with httpx.Client(base_url=server.url) as c:
            r = c.get(f"/api/traces/{trace_id}")
    finally:
        server.stop()
    assert r.status_code == 200
    assert r.json()["request"] == {
        "temperature": None,
        "messages": [{"role": "user", "content": "hi \ufffd"}],
    }
