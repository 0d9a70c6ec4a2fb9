"""`python -m api [--host 127.0.0.1] [--port 8000] [--db-url URL]`: serve the read-only API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import uvicorn

import storage
from storage import StoreError

from .app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("LLMPROF_API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("LLMPROF_API_PORT", 8000)))
    parser.add_argument(
        "--db-url", default=None, help="default: $LLMPROF_DB_URL, else the SQLite file"
    )
    args = parser.parse_args(argv)
    try:  # fail fast, in one line, before uvicorn starts
        asyncio.run(_check(args.db_url))
    except (StoreError, RuntimeError) as e:
        print(f"llmprof api: {e}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(db_url=args.db_url), host=args.host, port=args.port, log_level="warning")
    return 0


async def _check(db_url: str | None) -> None:
    store = await storage.open_store(db_url, readonly=True)
    await store.close()


if __name__ == "__main__":
    sys.exit(main())
