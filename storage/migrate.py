"""Numbered, append-only SQL migrations, one folder per dialect.

Files are `migrations/<dialect>/NNNN_what.sql`, applied in name order and
recorded by name in `schema_migrations`. An applied file is never edited: a
change to the schema is a new file.
"""

from __future__ import annotations

from importlib import resources

CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)


def migrations(dialect: str) -> list[tuple[str, str]]:
    """`(name, sql)` for every migration of `dialect`, in the order to apply them."""
    folder = resources.files("storage") / "migrations" / dialect
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def latest(dialect: str) -> str:
    return migrations(dialect)[-1][0]
