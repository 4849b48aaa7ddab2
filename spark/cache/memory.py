"""The bounded in-process tier in front of the disk: decoded payloads, validated by ``stat``.

An entry is served from memory only while the file's (inode, mtime, size) version is the one it
was read or written with, so another process that clears, expires or rewrites the entry is seen
at the cost of one ``stat`` — never a stale answer. An entry this process wrote is remembered at
once; one it read, on its second read (``read_again``): a key read once costs no copy, and a pass
over many keys does not push out the ones in use (docs/caching.md, "Reading and failing").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spark.cache.codec import EntryMeta
from spark.cache.stores.base import Version

__all__ = ["MemoryEntry", "MemoryTier"]


@dataclass(slots=True)
class MemoryEntry:
    """One decoded entry and the file version it belongs to."""

    location: str
    version: Version
    meta: EntryMeta
    payload: dict[str, Any]
    touched_at: float


class MemoryTier:
    """An LRU map of key -> ``MemoryEntry``, capped by entry count and by file bytes."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, MemoryEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._read_once: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> MemoryEntry | None:
        """The entry for ``key`` (marking it recently used), or None."""
        if key not in self._entries:  # (the common miss needs no lock: one dict lookup)
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def recall(
        self,
        key: str,
        path: str,
        current: Callable[[str], Version | None],
        admits: Callable[[EntryMeta], bool],
    ) -> MemoryEntry | None:
        """The entry of ``key`` at ``path`` while ``current(path)`` (the store's version now)
        is the one it was read with and ``admits`` its metadata; None otherwise. An entry whose
        file changed is forgotten; one another binding may use (other keys, another TTL) is kept.
        """
        entry = self.get(key)
        if entry is None or entry.location != path or not admits(entry.meta):
            return None
        if current(path) != entry.version:
            self.discard(key)  # changed or gone: the store has the truth
            return None
        return entry

    def read_again(self, key: str) -> bool:
        """Whether a read of ``key`` from the store should be remembered: True on its second
        read since the keys read once were last forgotten (they are, past four times the cap)."""
        if self.max_entries == 0 or self.max_bytes == 0:
            return False
        once = self._read_once
        if key in once:
            once.discard(key)
            return True
        if len(once) >= 4 * self.max_entries:
            once.clear()
        once.add(key)
        return False

    def put(self, key: str, entry: MemoryEntry) -> None:
        """Remember ``entry``; evicts the least recently used past either cap."""
        size = entry.version[2]
        if size > self.max_bytes or self.max_entries == 0:
            self.discard(key)
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.version[2]
            self._entries[key] = entry
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.version[2]

    def discard(self, key: str) -> None:
        """Forget ``key`` if present."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.version[2]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._read_once.clear()
            self._bytes = 0
