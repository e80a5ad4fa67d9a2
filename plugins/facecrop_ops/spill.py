"""Tables too big to hold in a task's memory, on the worker's disk: SQLite, Python's own.

The control plane joins a dataset's listing with the last run's manifest, the destination's
faces and the dataset's CSVs; at millions of photos those joins, sorts and groupings run here
with a bounded page cache, never as Python lists and dicts of every photo. One file per task
in a temporary folder, removed when the task is done.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

BATCH = 10_000  # rows a bulk insert hands SQLite at once
CACHE_KIB = 16 * 1024  # SQLite's page cache, and each sorter's in-memory buffer: what the tables may hold in memory


class Spill:
    """A throwaway SQLite database on the worker's disk (`with Spill() as db: ...`)."""

    def __init__(self, directory: str | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="facecrop-", dir=directory))
        try:
            self.db = sqlite3.connect(self.folder / "tables.sqlite", isolation_level=None)
            for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = FILE", f"cache_size = -{CACHE_KIB}"):
                self.db.execute(f"PRAGMA {pragma}")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def insert(self, table: str, rows: Iterable[Sequence[Any]]) -> int:
        """Rows appended in batches inside transactions (a key already there is replaced);
        returns how many were given."""
        count, batch = 0, []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                count += self._flush(table, batch)
                batch = []
        return count + (self._flush(table, batch) if batch else 0)

    def _flush(self, table: str, batch: list[Sequence[Any]]) -> int:
        marks = ", ".join("?" * len(batch[0]))
        self.db.execute("BEGIN")
        try:  # a key seen twice keeps its last row, as a dict would (a hand-edited manifest may repeat one)
            self.db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", batch)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return len(batch)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The query's rows as they come (fetched a batch at a time)."""
        cursor = self.db.execute(sql, params)
        while True:
            batch = cursor.fetchmany(BATCH)
            if not batch:
                return
            yield from batch

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else row[0]
