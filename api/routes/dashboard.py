"""The dashboard: `/` and its static assets (vanilla JS + SVG, no build step).

The page reads only the JSON API, from the browser, with the user's bearer
token when one is set. The page and its assets hold no data, so they are open
even when `LLMPROF_API_TOKEN` is set (see `is_public`); the HTML is never cached
(`no-store`) so an upgrade shows on the next load, and the assets are
revalidated (`no-cache` + ETag) and referenced with a content hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# The page renders untrusted text (prompts, responses) with textContent only; the
# policy makes sure nothing but our own files could run even if that slipped.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


def is_public(path: str) -> bool:
    """Paths served without the bearer token: the page and its assets, never data."""
    return path == "/" or path.startswith("/static/")


def _read(name: str) -> bytes:
    try:
        return (STATIC / name).read_bytes()
    except OSError as e:
        raise HTTPException(404, f"dashboard file {name} is missing from {STATIC}") from e


def _etag(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=8).hexdigest()


@router.get("/")
async def index() -> Response:
    """The dashboard page, with asset URLs carrying their content hash."""
    html = _read("index.html").decode("utf-8")
    for name in ASSETS:
        html = html.replace(f"/static/{name}", f"/static/{name}?v={_etag(_read(name))}")
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={"cache-control": "no-store", **SECURITY},
    )


@router.get("/static/{name}")
async def asset(name: str, request: Request) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no dashboard file {name!r}")
    body = _read(name)
    etag = f'"{_etag(body)}"'
    headers = {"cache-control": "no-cache", "etag": etag, **SECURITY}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=ASSETS[name], headers=headers)
