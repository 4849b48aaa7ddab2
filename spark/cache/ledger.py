"""The ledger: hits, misses, dollars spent and saved per provider and model, across processes.

Counts go to a small SQLite file beside the entries (``{cache_dir}/.spark-ledger.sqlite``), or
to the Redis of a Redis cache (``spark.cache.redis_ledger``). A hit
only bumps an in-memory counter; a background thread adds the batch to the file every few
seconds (and at exit), so counting costs a hit well under a microsecond. The file is bookkeeping,
not cache content: it is ignored by git (a ``.gitignore`` is written beside it), and a missing or
unwritable ledger only means the cross-process figures start again from zero.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spark.cache.backend import StoreUnavailableError
from spark.cache.usage import ensure_bookkeeping_ignored

__all__ = [
    "LEDGER_NAME",
    "Ledger",
    "LedgerRow",
    "LedgerSink",
    "RequestRow",
    "SQLiteLedger",
    "UsageRow",
    "close_all_ledgers",
    "read_ledger",
    "read_top_requests",
]

logger = logging.getLogger("spark.cache")
LEDGER_NAME = ".spark-ledger.sqlite"
_FLUSH_EVERY_S = 2.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL, provider TEXT NOT NULL, model_id TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
    saved_usd REAL NOT NULL DEFAULT 0, spent_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (day, provider, model_id)
);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, model_id TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0, saved_usd REAL NOT NULL DEFAULT 0, last_hit REAL
)
"""
_UPSERT = """
INSERT INTO usage (day, provider, model_id, hits, misses, saved_usd, spent_usd)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, provider, model_id) DO UPDATE SET
    hits = hits + excluded.hits, misses = misses + excluded.misses,
    saved_usd = saved_usd + excluded.saved_usd, spent_usd = spent_usd + excluded.spent_usd
"""
_UPSERT_KEY = """
INSERT INTO requests (key, provider, model_id, hits, saved_usd, last_hit) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    hits = hits + excluded.hits, saved_usd = saved_usd + excluded.saved_usd,
    last_hit = excluded.last_hit
"""


@dataclass(frozen=True)
class RequestRow:
    """How often one stored request was served from the cache (for "top repeated requests")."""

    key: str
    provider: str
    model_id: str
    hits: int
    saved_usd: float
    last_hit: float | None


@dataclass(frozen=True)
class LedgerRow:
    """All-time figures of one provider's model in one cache directory (``day`` "" = all)."""

    provider: str
    model_id: str
    hits: int
    misses: int
    saved_usd: float
    spent_usd: float
    day: str = ""

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, 0 when there were none."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class LedgerSink(Protocol):
    """Where a ledger's batches go: SQLite beside a disk cache, or the Redis of a Redis cache."""

    def describe(self) -> str:
        """Where the figures live, for messages."""

    def exists(self) -> bool:
        """Whether any figures were ever recorded there."""

    def add(self, rows: list[UsageRow], request_rows: list[RequestRow]) -> None:
        """Add one batch (raises on failure)."""

    def rows(self, by_day: bool = False) -> list[LedgerRow]:
        """Figures per provider and model (and per day with ``by_day``)."""

    def top_requests(self, limit: int = 20) -> list[RequestRow]:
        """The requests served from the cache most often."""


# (day, provider, model_id, hits, misses, saved_usd, spent_usd)
UsageRow = tuple[str, str, str, int, int, float, float]


class Ledger:
    """Batched counters of one cache, flushed to a sink by a background thread (and at exit)."""

    def __init__(self, target: Path | LedgerSink, flush_every_s: float = _FLUSH_EVERY_S) -> None:
        self.sink: LedgerSink = SQLiteLedger(target) if isinstance(target, Path) else target
        self.flush_every_s = flush_every_s
        self._pending: dict[tuple[str, str], list[float]] = {}
        self._pending_keys: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        # Held for a whole flush: the at-exit flush waits for one the thread has under way
        # instead of letting the interpreter exit in the middle of it.
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._disabled = False
        self._stopped = threading.Event()
        _LIVE.add(self)

    def record(
        self, provider: str, model_id: str, *, hit: bool, cost: float | None, key: str = ""
    ) -> None:
        """Count one lookup: a hit saves ``cost``, a miss spends it."""
        index = 0 if hit else 1
        with self._lock:
            slot = self._pending.get((provider, model_id))
            if slot is None:
                slot = self._pending[(provider, model_id)] = [0, 0, 0.0, 0.0]
            slot[index] += 1
            if cost:
                slot[2 + index] += cost
            if hit and key:
                per_key = self._pending_keys.get(key)
                if per_key is None:
                    per_key = self._pending_keys[key] = [provider, model_id, 0, 0.0, 0.0]
                per_key[2] += 1
                per_key[3] += cost or 0.0
                per_key[4] = time.time()
        if self._flusher is None and not self._disabled:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="spark-ledger", daemon=True
                )
                self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._disabled and not self._stopped.wait(self.flush_every_s):
            self.flush()

    def close(self) -> None:
        """Flush what is pending and stop the background thread (later counts flush at exit)."""
        self._stopped.set()
        flusher = self._flusher
        if flusher is not None:
            flusher.join()
        self.flush()

    def flush(self) -> None:
        """Add the pending counts to the sink now (never raises)."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            pending_keys, self._pending_keys = self._pending_keys, {}
        day = time.strftime("%Y-%m-%d")
        rows: list[UsageRow] = [
            (day, p, m, int(s[0]), int(s[1]), s[2], s[3])
            for (p, m), s in pending.items()
            if s[0] or s[1]
        ]
        if not rows or self._disabled:
            return
        request_rows = [RequestRow(key, *values) for key, values in pending_keys.items()]
        try:
            self.sink.add(rows, request_rows)
        except StoreUnavailableError:  # down for now (the store has warned): count it later
            self._restore(pending, pending_keys)
        except Exception as exc:  # any sink failure: stop counting, never fail the caller
            self._disabled = True
            where = self.sink.describe()
            logger.warning("cache ledger %s is not writable (%s); not counting", where, exc)

    def _restore(
        self, pending: dict[tuple[str, str], list[float]], pending_keys: dict[str, list[Any]]
    ) -> None:
        """Put a batch that could not be added back in front of what was counted since."""
        with self._lock:
            for slot_key, counts in pending.items():
                slot = self._pending.setdefault(slot_key, [0, 0, 0.0, 0.0])
                for index, value in enumerate(counts):
                    slot[index] += value
            for key, values in pending_keys.items():
                per_key = self._pending_keys.setdefault(key, [values[0], values[1], 0, 0.0, 0.0])
                per_key[2] += values[2]
                per_key[3] += values[3]
                per_key[4] = max(per_key[4], values[4])

    def rows(self, by_day: bool = False) -> list[LedgerRow]:
        """All figures so far, this process's pending ones included."""
        self.flush()
        return self.sink.rows(by_day)

    def top_requests(self, limit: int = 20) -> list[RequestRow]:
        """The requests served from the cache most often, this process's included."""
        self.flush()
        return self.sink.top_requests(limit)


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
        query = (
            "SELECT provider, model_id, SUM(hits), SUM(misses), SUM(saved_usd), SUM(spent_usd),"
            f" {day} FROM usage GROUP BY provider, model_id, {day}"
            f" ORDER BY {day}, provider, model_id"
        )
        return [LedgerRow(*row) for row in self._query(query, ())]

    def top_requests(self, limit: int = 20) -> list[RequestRow]:
        """Most served requests first."""
        query = (
            "SELECT key, provider, model_id, hits, saved_usd, last_hit FROM requests"
            " ORDER BY hits DESC, key LIMIT ?"
        )
        return [RequestRow(*row) for row in self._query(query, (limit,))]

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
    if create and not path.exists():
        ensure_bookkeeping_ignored(path.parent)
    db = sqlite3.connect(path, timeout=10.0)
    try:
        if create:
            db.executescript(_SCHEMA)
        with db:
            yield db
    finally:
        db.close()


_LIVE: weakref.WeakSet[Ledger] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    close_all_ledgers()


def close_all_ledgers() -> None:
    """Flush and stop every ledger of this process (at exit; between tests)."""
    for ledger in list(_LIVE):
        ledger.close()
