"""The API app factory. Nothing is built at import time.

`create_app(store=None, db_url=None)`: with a store, the app serves it as given
(and does not close it); otherwise the lifespan opens the store named by
`db_url` / `LLMPROF_DB_URL` / the default file, READ-ONLY, and closes it on exit.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

import storage
from storage import BaseStore

from . import errors
from .routes import dashboard, sessions, summary, traces


def create_app(
    store: BaseStore | None = None, db_url: str | None = None, token: str | None = None
) -> FastAPI:
    """Build the read-only API. `token` (default `LLMPROF_API_TOKEN`) turns on bearer auth."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if store is not None:
            app.state.store = store
            yield
            return
        opened = await storage.open_store(db_url, readonly=True)
        app.state.store = opened
        try:
            yield
        finally:
            await opened.close()

    app = FastAPI(
        title="llmprof",
        summary="Where your LLM tokens and dollars go: recorded calls, runs, templates, waste.",
        version="0.2.0",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (traces, summary, sessions, dashboard):
        app.include_router(module.router)
    token = token if token is not None else os.environ.get("LLMPROF_API_TOKEN") or None
    app.add_middleware(ReadOnlyGuard, token=token)
    return app


class ReadOnlyGuard:
    """Only GET and HEAD reach the routes (HEAD is answered as GET without a body),
    and, when a token is set, only requests bearing it."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            response = errors.error_response(
                405,
                f"method {method} not allowed: this API is read-only",
                headers={"Allow": "GET, HEAD"},
            )
            return await response(scope, receive, send)
        if self.token and scope["path"] != "/api/health" and not dashboard.is_public(scope["path"]):
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            given = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                response = errors.error_response(
                    401,
                    "missing or wrong bearer token (see LLMPROF_API_TOKEN)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                return await response(scope, receive, send)
        if method == "HEAD":
            scope = {**scope, "method": "GET"}

            async def send_headers_only(message: dict) -> None:
                if message["type"] == "http.response.body":
                    message = {**message, "body": b""}
                await send(message)

            return await self.app(scope, receive, send_headers_only)
        return await self.app(scope, receive, send)
