"""``Ledger``: a cache's hit/miss/dollar counters, batched in memory and flushed to a sink.

A hit only bumps an in-memory counter; one background thread per process adds every ledger's
batch to its sink every few seconds (and at exit), so counting costs a hit well under a
microsecond. A batch the sink refuses
(disk full, a locked file, Redis down) is kept and retried later with a bounded backoff: one
failed write never stops the counting for good. Amounts that are not finite non-negative
numbers are refused where they enter (``record``), so one bad price cannot poison the sums.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spark.cache.ledger.base import LedgerRow, LedgerSink, RequestRow, UsageRow
from spark.cache.ledger.sqlite import SQLiteLedger
from spark.cache.shape import valid_amount
from spark.cache.stores.base import StoreUnavailableError

__all__ = ["Ledger", "close_all_ledgers"]

logger = logging.getLogger("spark.cache")
_FLUSH_EVERY_S = 2.0
_TICK_S = 0.5  # how often the flusher looks for a ledger that is due
_MAX_BACKOFF_S = 60.0


class Ledger:
    """Batched counters of one cache, flushed to a sink by a background thread (and at exit)."""

    def __init__(
        self,
        target: Path | LedgerSink,
        flush_every_s: float = _FLUSH_EVERY_S,
        may_create: Callable[[], bool] | None = None,
    ) -> None:
        self.sink: LedgerSink = SQLiteLedger(target) if isinstance(target, Path) else target
        self.flush_every_s = flush_every_s
        # False while a sink that does not exist may not be made: a cache only read (replay,
        # read_only) creates no ledger file, and no directory or .gitignore for one; its counts
        # wait in memory, and go in once the process writes to the cache (docs/caching.md).
        self.may_create = may_create
        self._pending: dict[tuple[str, str], list[float]] = {}
        self._pending_keys: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        # Held for a whole flush: the at-exit flush waits for one the thread has under way
        # instead of letting the interpreter exit in the middle of it.
        self._flush_lock = threading.Lock()
        self._failures = 0  # consecutive failed flushes: the backoff doubles with each
        self._next_flush = time.monotonic() + flush_every_s
        self._warned_amount = False
        _LIVE.add(self)
        # Started with the first ledger, not on the first count: a thread start would cost a
        # first hit about 0.3 ms.
        _FLUSHER.ensure_running()

    def record(
        self,
        provider: str,
        model_id: str,
        *,
        hit: bool,
        cost: float | None,
        key: str = "",
        provider_cache_saved: float | None = None,
        lookup: bool = True,
    ) -> None:
        """Count one lookup: a hit saves ``cost``, a miss spends it (None: price unknown); a
        miss's ``provider_cache_saved`` is what the provider's prompt cache took off it.
        ``lookup=False``: a paid call made past the cache, which spends without being a miss."""
        amount = self._amount(cost)
        cache_saved = None if hit else self._amount(provider_cache_saved)
        index = 0 if hit else 1
        with self._lock:
            slot = self._pending.get((provider, model_id))
            if slot is None:
                slot = self._pending[(provider, model_id)] = [0, 0, 0.0, 0.0, 0.0]
            slot[index] += lookup
            if amount:
                slot[2 + index] += amount
            if cache_saved:
                slot[4] += cache_saved
            if hit and key:
                per_key = self._pending_keys.get(key)
                if per_key is None:
                    per_key = self._pending_keys[key] = [provider, model_id, 0, 0.0, 0.0]
                per_key[2] += 1
                per_key[3] += amount or 0.0
                per_key[4] = time.time()
        if not _FLUSHER.started:  # (stopped by close_all_ledgers: counting goes on)
            _FLUSHER.ensure_running()

    def _amount(self, cost: float | None) -> float | None:
        amount = valid_amount(cost) if cost is not None else None
        if cost is not None and amount is None:
            self._refuse_amount(cost)
        return amount

    def _refuse_amount(self, cost: object) -> None:
        if not self._warned_amount:
            self._warned_amount = True
            logger.warning("cache ledger: ignoring a cost of %r (not a finite amount >= 0)", cost)

    def flush_if_due(self, now: float) -> None:
        """Flush when the interval (or the backoff after a failure) has passed."""
        if now >= self._next_flush:
            self.flush()

    def close(self) -> None:
        """Flush what is pending (later counts flush with the next batch, or at exit)."""
        self.flush()

    def flush(self) -> bool:
        """Add the pending counts to the sink now; False when the sink refused them (they stay
        pending and are retried). Never raises."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> bool:
        if self._held_back():
            return True
        with self._lock:
            pending, self._pending = self._pending, {}
            pending_keys, self._pending_keys = self._pending_keys, {}
        day = time.strftime("%Y-%m-%d")
        rows: list[UsageRow] = [
            (day, p, m, int(s[0]), int(s[1]), s[2], s[3], s[4])
            for (p, m), s in pending.items()
            if any(s)  # (a call made past the cache: spent, with no hit or miss to count)
        ]
        self._next_flush = time.monotonic() + self.flush_every_s
        if not rows:
            return True
        request_rows = [RequestRow(key, *values) for key, values in pending_keys.items()]
        try:
            self.sink.add(rows, request_rows)
        except Exception as exc:  # any sink failure: keep the batch, retry later, never raise
            self._restore(pending, pending_keys)
            self._note_failure(exc)
            return False
        if self._failures:
            logger.info("cache ledger %s is writable again", self.sink.describe())
        self._failures = 0
        return True

    def _held_back(self) -> bool:
        """True when there are counts but no sink, and none may be made yet (``may_create``)."""
        if self.may_create is None or not self._pending or self.may_create():
            return False
        try:
            if self.sink.exists():
                return False
        except Exception:  # the sink is unreachable: the usual failure path takes it
            return False
        self._next_flush = time.monotonic() + self.flush_every_s
        return True

    def _note_failure(self, exc: Exception) -> None:
        self._failures += 1
        delay = min(self.flush_every_s * 2**self._failures, _MAX_BACKOFF_S)
        self._next_flush = time.monotonic() + delay
        if self._failures == 1 and not isinstance(exc, StoreUnavailableError):
            # (an unavailable store has already said so, once per outage)
            logger.warning(
                "cache ledger %s is not writable (%s); counts are kept and retried",
                self.sink.describe(),
                exc,
            )

    def _restore(
        self, pending: dict[tuple[str, str], list[float]], pending_keys: dict[str, list[Any]]
    ) -> None:
        """Put a batch that could not be added back in front of what was counted since."""
        with self._lock:
            for slot_key, counts in pending.items():
                slot = self._pending.setdefault(slot_key, [0, 0, 0.0, 0.0, 0.0])
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


_LIVE: weakref.WeakSet[Ledger] = weakref.WeakSet()


class _Flusher:
    """The one background thread of a process that flushes every live ledger when it is due."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.started = False

    def ensure_running(self) -> None:
        """Start the thread unless it runs (again after ``stop``, or in a forked child)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="spark-ledger", daemon=True)
                self._thread.start()
            self.started = True

    def _run(self) -> None:
        while not self._stop.wait(_TICK_S):
            now = time.monotonic()
            for ledger in list(_LIVE):
                ledger.flush_if_due(now)

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self.started = False
        if thread is not None and thread is not threading.current_thread():
            thread.join()


_FLUSHER = _Flusher()


@atexit.register
def _flush_all() -> None:
    close_all_ledgers()


def close_all_ledgers() -> None:
    """Stop the background flusher and flush every ledger of this process (at exit; between
    tests). A ledger used afterwards starts the flusher again."""
    _FLUSHER.stop()
    for ledger in list(_LIVE):
        ledger.close()
