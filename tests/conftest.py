"""Shared fixtures. Store fixtures run every test on SQLite and on PostgreSQL.

PostgreSQL comes from `LLMPROF_TEST_PG_URL` (default: the local `test` database);
each test gets a fresh schema, dropped afterwards. An unreachable server fails
the postgres tests; set `LLMPROF_SKIP_PG=1` to skip them instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

import storage
from storage import BaseStore
from storage.postgres import split_schema

PG_URL = os.environ.get("LLMPROF_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

MakeStore = Callable[..., Awaitable[BaseStore]]


@contextlib.asynccontextmanager
async def _pg_schema() -> AsyncIterator[str]:
    """A URL naming a fresh schema on the test server; the schema is dropped on exit."""
    if os.environ.get("LLMPROF_SKIP_PG") == "1":
        pytest.skip("LLMPROF_SKIP_PG=1")
    dsn, _ = split_schema(PG_URL)
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        pytest.fail(
            f"PostgreSQL at LLMPROF_TEST_PG_URL is unreachable ({e}); "
            "start it, or set LLMPROF_SKIP_PG=1 to skip the postgres tests",
            pytrace=False,
        )
    schema = f"t_{secrets.token_hex(6)}"
    try:
        yield f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL URL with a schema of its own (for tests that need PostgreSQL itself)."""
    async with _pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """An empty database URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'llmprof.db'}"
        return
    async with _pg_schema() as url:
        yield url


@pytest.fixture
async def make_store(db_url: str) -> AsyncIterator[MakeStore]:
    """`await make_store(readonly=False, url=None)`: open a store (default on `db_url`);
    every store opened this way is closed after the test."""
    opened: list[BaseStore] = []

    async def make(readonly: bool = False, url: str | None = None) -> BaseStore:
        store = storage.make_store(url or db_url, readonly=readonly)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> BaseStore:
    """A writable, migrated, empty store on each backend."""
    return await make_store()
