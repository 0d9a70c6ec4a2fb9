"""Where the data lives: LLMPROF_HOME, the default SQLite file, database URLs."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from .base import StoreError

SUPPORTED = "sqlite:///ABSOLUTE/PATH.db, sqlite:///./relative.db, postgresql://..., postgres://..."


def llmprof_home() -> Path:
    """`$LLMPROF_HOME`, else `~/.llmprof`; created on first use."""
    home = Path(os.environ.get("LLMPROF_HOME") or Path.home() / ".llmprof").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_db_path() -> Path:
    return llmprof_home() / "llmprof.db"


def resolve_db_url(url: str | None = None) -> str:
    """An explicit URL, else `LLMPROF_DB_URL`, else the default SQLite file."""
    if url:
        return url
    env = os.environ.get("LLMPROF_DB_URL", "").strip()
    if env:
        return env
    return f"sqlite:///{default_db_path()}"


def parse_db_url(url: str) -> tuple[str, str]:
    """`("sqlite", path)` or `("postgresql", dsn)`; StoreError names the supported forms.

    SQLite: `sqlite:////abs/path.db` or `sqlite:///abs/path.db` (both absolute) and
    `sqlite:///./rel.db` or `sqlite:rel.db` (relative to the working directory).
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql", url
    if scheme == "sqlite":
        rest = url[len("sqlite:") :]
        if rest.startswith("///./") or rest.startswith("///../"):
            path = rest[3:]  # sqlite:///./rel.db
        elif rest.startswith("///"):
            path = "/" + rest.lstrip("/")  # sqlite:///abs.db and sqlite:////abs.db
        elif rest.startswith("//"):
            path = rest[2:]  # sqlite://rel.db, as llmprof 0.1 wrote it
        else:
            path = rest  # sqlite:rel.db
        if not path or path == "/":
            raise StoreError(
                f"SQLite URL {url!r} names no file; use e.g. sqlite:///{default_db_path()}"
            )
        return "sqlite", str(Path(path).expanduser())
    raise StoreError(
        f"unsupported database URL {url!r}: llmprof stores traces in SQLite or PostgreSQL "
        f"({SUPPORTED})"
    )
