"""The cross-process claims a cache holds on keys while their provider calls run.

A claim is the store's ``try_lock`` (Redis: ``SET NX PX lock_seconds``; a directory needs none).
It is renewed from one daemon thread per cache, every third of ``lock_seconds``, not from a task
on the caller's event loop: that loop may be busy, and the first call of an SDK builds its client
and imports its modules in it (0.6-0.8 s measured in the fleet tests, enough for a 1.5 s claim
to lapse and a second process to make the same call). A process that dies stops renewing, so
its claims expire and another process takes the call over (docs/redis.md, "One provider call per question, fleet-wide").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from spark.cache.flight import STALLED_S
from spark.cache.stores.base import EntryStore

logger = logging.getLogger("spark.cache")


class Claims:
    """The claims of one store's cache, renewed while they are held."""

    def __init__(self, store: EntryStore, lock_seconds: float) -> None:
        self._store = store
        self._every = lock_seconds / 3
        self._held: dict[str, str] = {}  # token -> key
        self._parked: dict[str, float] = {}  # token -> since when its stream waits for its reader
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    def take(self, key: str) -> str | None:
        """A token once this process holds the claim on ``key``; None while another process
        holds it; ``""`` when there is no shared claim (a directory, or the store is away: the
        caller calls the provider itself)."""
        try:
            token = self._store.try_lock(key)
        except OSError:
            return ""
        if token:
            with self._lock:
                self._held[token] = key
                if self._renewer is None or not self._renewer.is_alive():
                    self._renewer = threading.Thread(
                        target=self._renew, name="spark-claims", daemon=True
                    )
                    self._renewer.start()
        return token

    def park(self, token: str, parked: bool) -> None:
        """A stream holding ``token`` waits for its reader to take a chunk (or goes on): a
        claim parked longer than ``STALLED_S`` is not renewed, so a stream kept but no longer
        read holds the other processes back for ``lock_seconds`` at most, not for ever."""
        with self._lock:
            if parked:
                self._parked[token] = time.monotonic()
            else:
                self._parked.pop(token, None)

    def release(self, key: str, token: str) -> None:
        """Give the claim up now (if we cannot reach the store, it expires by itself)."""
        with self._lock:
            self._held.pop(token, None)
            self._parked.pop(token, None)
        with contextlib.suppress(OSError):
            self._store.unlock(key, token)

    def _renew(self) -> None:
        """Renew every held claim each period; stop when none is held. A claim that is no
        longer ours (it lapsed and another process took it) is dropped."""
        while True:
            time.sleep(self._every)
            with self._lock:
                held = list(self._held.items())
                if not held:
                    self._renewer = None
                    return
                stalled = {t for t, s in self._parked.items() if time.monotonic() - s >= STALLED_S}
            for token, key in held:
                if token in stalled:
                    continue  # (its stream is not being read: let the claim lapse)
                try:
                    if self._store.renew_lock(key, token):
                        continue
                except Exception as exc:  # (the store away, or worse: tried again next period)
                    logger.debug("cannot renew the claim on %s (it may lapse): %s", key, exc)
                    continue
                logger.debug("lost the claim on %s: another process took it over", key)
                with self._lock:
                    self._held.pop(token, None)
