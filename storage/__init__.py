"""llmprof storage: the `BaseStore` contract and its backends.

`open_store()` picks the backend from a URL: an explicit argument wins over the
`LLMPROF_DB_URL` environment variable, which wins over the default SQLite file
`$LLMPROF_HOME/llmprof.db` (`LLMPROF_HOME` defaults to `~/.llmprof`).
"""

from __future__ import annotations

from .base import BaseStore, StoreError
from .config import default_db_path, llmprof_home, parse_db_url, resolve_db_url
from .trace import Trace

__all__ = [
    "BaseStore",
    "StoreError",
    "Trace",
    "default_db_path",
    "llmprof_home",
    "make_store",
    "open_store",
    "parse_db_url",
    "resolve_db_url",
]


def make_store(url: str | None = None, *, readonly: bool = False) -> BaseStore:
    """Build (but do not open) the store for `url`; raises StoreError on a bad URL."""
    kind, target = parse_db_url(resolve_db_url(url))
    if kind == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(target, readonly=readonly)
    try:
        import asyncpg  # noqa: F401
    except ImportError as e:  # pragma: no cover - asyncpg is a dependency
        raise RuntimeError(
            "a PostgreSQL URL needs the asyncpg driver: run `make install` "
            "(or `pip install asyncpg`) in llmprof's environment"
        ) from e
    from .postgres import PostgresStore

    return PostgresStore(target, readonly=readonly)


async def open_store(url: str | None = None, *, readonly: bool = False) -> BaseStore:
    """Build and open the store for `url` (see the module docstring for defaults)."""
    store = make_store(url, readonly=readonly)
    await store.open()
    return store
