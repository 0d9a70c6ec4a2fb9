"""A durable local spool for traces the store could not take.

When the database is away (PostgreSQL down, SQLite locked, disk full), the writer
appends each batch here as one JSON-lines file, and replays the files in order
once the store answers again. Every trace carries a unique `uid` and stores skip
uids they already hold, so a replay interrupted half-way never duplicates.
The spool is bounded: past `max_bytes` a batch is dropped, and the caller counts
and logs it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from storage.trace import Trace


class Spool:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._seq = 0

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix == ".jsonl")

    def size(self) -> int:
        total = 0
        for p in self.files():
            try:
                total += p.stat().st_size
            except FileNotFoundError:  # another proxy replayed it meanwhile
                pass
        return total

    def __bool__(self) -> bool:
        return bool(self.files())

    def append(self, traces: list[Trace]) -> bool:
        """Write one batch durably; False (nothing written) when over the bound."""
        data = "".join(
            json.dumps(t.to_dict(), ensure_ascii=False, default=str) + "\n" for t in traces
        ).encode("utf-8", errors="replace")
        if self.size() + len(data) > self.max_bytes:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        # Names sort in write order: nanosecond clock, then pid and a counter.
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}"
        tmp = self.folder / f"{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.folder / f"{name}.jsonl")
        return True

    @staticmethod
    def read(path: Path) -> list[Trace]:
        """The traces of one spool file; a torn last line (a crash mid-write) is skipped."""
        traces = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    traces.append(Trace.from_dict(json.loads(line)))
                except (ValueError, TypeError):
                    continue
        return traces

    @staticmethod
    def remove(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
