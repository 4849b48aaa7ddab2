"""The ledger of a disk cache: a small SQLite file beside the entries
(``{cache_dir}/.spark-ledger.sqlite``), ignored by git (a ``.gitignore`` is written beside it).

A file written before the ``provider_cache_saved_usd`` column existed gains it (``ALTER TABLE``)
the first time this version adds to it, and reads as 0 for it until then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spark.cache.ledger.base import LedgerRow, RequestRow, UsageRow, report_damage
from spark.cache.ledger.usage import ensure_bookkeeping_ignored

__all__ = ["LEDGER_NAME", "SQLiteLedger", "read_ledger", "read_top_requests"]

logger = logging.getLogger("spark.cache")
LEDGER_NAME = ".spark-ledger.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL, provider TEXT NOT NULL, model_id TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
    saved_usd REAL NOT NULL DEFAULT 0, spent_usd REAL NOT NULL DEFAULT 0,
    provider_cache_saved_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (day, provider, model_id)
);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, model_id TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0, saved_usd REAL NOT NULL DEFAULT 0, last_hit REAL
)
"""
_UPSERT = """
INSERT INTO usage
    (day, provider, model_id, hits, misses, saved_usd, spent_usd, provider_cache_saved_usd)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, provider, model_id) DO UPDATE SET
    hits = hits + excluded.hits, misses = misses + excluded.misses,
    saved_usd = saved_usd + excluded.saved_usd, spent_usd = spent_usd + excluded.spent_usd,
    provider_cache_saved_usd = provider_cache_saved_usd + excluded.provider_cache_saved_usd
"""
_CACHE_SAVED = "provider_cache_saved_usd"
_ADD_CACHE_SAVED = f"ALTER TABLE usage ADD COLUMN {_CACHE_SAVED} REAL NOT NULL DEFAULT 0"
_UPSERT_KEY = """
INSERT INTO requests (key, provider, model_id, hits, saved_usd, last_hit) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    hits = hits + excluded.hits, saved_usd = saved_usd + excluded.saved_usd,
    last_hit = excluded.last_hit
"""


class SQLiteLedger:
    """The ledger of a disk cache: ``{cache_dir}/.spark-ledger.sqlite``."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / LEDGER_NAME

    def describe(self) -> str:
        """The file."""
        return str(self.path)

    def exists(self) -> bool:
        """Whether the file exists."""
        return self.path.exists()

    def add(self, rows: list[UsageRow], request_rows: list[RequestRow]) -> None:
        """Upsert one batch in one transaction."""
        with _connect(self.path, create=True) as db:
            db.executemany(_UPSERT, rows)
            db.executemany(
                _UPSERT_KEY,
                [
                    (r.key, r.provider, r.model_id, r.hits, r.saved_usd, r.last_hit)
                    for r in request_rows
                ],
            )

    def rows(self, by_day: bool = False) -> list[LedgerRow]:
        """Figures per provider and model (and per day)."""
        day = "day" if by_day else "''"
        cache_saved = f"SUM({_CACHE_SAVED})" if self._has_cache_saved() else "0.0"
        query = (
            "SELECT provider, model_id, SUM(hits), SUM(misses), SUM(saved_usd), SUM(spent_usd),"
            f" {day}, {cache_saved} FROM usage GROUP BY provider, model_id, {day}"
            f" ORDER BY {day}, provider, model_id"
        )
        rows, refused = [], 0
        for provider, model_id, hits, misses, saved, spent, day_, cache_saved_ in self._query(
            query, ()
        ):
            figures = (hits, misses, saved, spent, cache_saved_)
            row, bad = LedgerRow.read_back(provider, model_id, figures, day_)
            rows.append(row)
            refused += bad
        report_damage(self.describe(), refused)
        return rows

    def _has_cache_saved(self) -> bool:
        """Whether the file has the column yet (a ledger of an older Spark may not)."""
        columns = self._query("SELECT name FROM pragma_table_info('usage')", ())
        return (_CACHE_SAVED,) in columns

    def top_requests(self, limit: int = 20) -> list[RequestRow]:
        """Most served requests first."""
        query = (
            "SELECT key, provider, model_id, hits, saved_usd, last_hit FROM requests"
            " ORDER BY hits DESC, key LIMIT ?"
        )
        rows, refused = [], 0
        for key, provider, model_id, *figures in self._query(query, (limit,)):
            row, bad = RequestRow.read_back(key, provider, model_id, figures)
            rows.append(row)
            refused += bad
        report_damage(self.describe(), refused)
        return rows

    def _query(self, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        try:
            with _connect(self.path, create=False) as db:
                return list(db.execute(query, args))
        except sqlite3.Error as exc:
            logger.warning("cannot read cache ledger %s: %s", self.path, exc)
            return []


def read_ledger(cache_dir: str | Path, by_day: bool = False) -> list[LedgerRow]:
    """The figures of a disk cache's ledger per provider and model (and per day)."""
    return SQLiteLedger(Path(cache_dir)).rows(by_day)


def read_top_requests(cache_dir: str | Path, limit: int = 20) -> list[RequestRow]:
    """The stored requests of a disk cache served most often, most hits first."""
    return SQLiteLedger(Path(cache_dir)).top_requests(limit)


@contextlib.contextmanager
def _connect(path: Path, *, create: bool) -> Iterator[sqlite3.Connection]:
    _refuse_links(path)
    if create and not path.exists():
        ensure_bookkeeping_ignored(path.parent)
    db = sqlite3.connect(path, timeout=10.0)
    try:
        if create:
            db.executescript(_SCHEMA)
            _migrate(db)
        with db:
            yield db
    finally:
        db.close()


def _refuse_links(path: Path) -> None:
    """Refuse a ledger, or a journal of it, that is a symlink or not a regular file: SQLite
    would follow it and write outside the cache directory (a committed cache may hold one)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            found = os.lstat(f"{path}{suffix}")
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(found.st_mode):
            raise sqlite3.OperationalError(
                f"{path.name}{suffix} is a symlink or not a regular file (not followed): remove it"
            )


def _migrate(db: sqlite3.Connection) -> None:
    """Add the ``provider_cache_saved_usd`` column to a ledger an older Spark made."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(usage)")}
    if _CACHE_SAVED in columns:
        return
    try:
        db.execute(_ADD_CACHE_SAVED)
    except sqlite3.OperationalError as exc:  # another process added it a moment ago
        if "duplicate column" not in str(exc):
            raise
