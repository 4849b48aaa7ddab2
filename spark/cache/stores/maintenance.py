"""Whole-directory work on a ``DiskStore``: statistics, expiry cleanup, LRU eviction, stray temps.

Each function walks the tree once with ``scandir`` and reads at most the first bytes of a file, so
it stays fast at 100,000 entries.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spark.cache.codec import CorruptEntryError, decode_envelope, peek_expires_at
from spark.cache.stores.base import EntryStore
from spark.cache.stores.disk import DiskStore, EntryFile, unquote_model_id

__all__ = [
    "DirectoryStats",
    "cleanup_expired",
    "entry_expires_at",
    "evict_lru",
    "remove_stray_temps",
    "scan_stats",
]

_HEAD_BYTES = 4096
_TEMP_MAX_AGE_S = 3600.0


@dataclass
class DirectoryStats:
    """Entries and bytes of a cache directory, by provider and by model."""

    total_entries: int = 0
    total_size_bytes: int = 0
    entries_by_provider: Counter[str] = field(default_factory=Counter)
    bytes_by_provider: Counter[str] = field(default_factory=Counter)
    entries_by_model: dict[str, Counter[str]] = field(default_factory=dict)
    bytes_by_model: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, entry: EntryFile, model_id: str) -> None:
        """Count one entry file."""
        self.total_entries += 1
        self.total_size_bytes += entry.size
        self.entries_by_provider[entry.provider] += 1
        self.bytes_by_provider[entry.provider] += entry.size
        self.entries_by_model.setdefault(entry.provider, Counter())[model_id] += 1
        self.bytes_by_model.setdefault(entry.provider, Counter())[model_id] += entry.size

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts, as ``get_stats()`` returns them."""
        return {
            "total_entries": self.total_entries,
            "total_size_bytes": self.total_size_bytes,
            "entries_by_provider": dict(self.entries_by_provider),
            "bytes_by_provider": dict(self.bytes_by_provider),
            "entries_by_model": {p: dict(c) for p, c in self.entries_by_model.items()},
            "bytes_by_model": {p: dict(c) for p, c in self.bytes_by_model.items()},
        }


def scan_stats(store: EntryStore) -> DirectoryStats:
    """Count every entry file by provider and model id."""
    stats = DirectoryStats()
    names: dict[str, str] = {}
    for entry in store.walk():
        model_id = names.get(entry.path.rsplit("/", 1)[0])
        if model_id is None:
            model_id = _model_id_of(store, entry)
            names[entry.path.rsplit("/", 1)[0]] = model_id
        stats.add(entry, model_id)
    return stats


def _model_id_of(store: EntryStore, entry: EntryFile) -> str:
    model_id = _safe_unquote(entry.model_dir)
    if model_id is not None:
        return model_id
    try:  # a long id is hashed in its folder name; its metadata has it in full
        found = store.read(entry.path)
        if found is not None:
            return decode_envelope(found[0])[0].model_id
    except (OSError, CorruptEntryError):
        pass
    return entry.model_dir


def _safe_unquote(name: str) -> str | None:
    try:
        return unquote_model_id(name)
    except (ValueError, UnicodeDecodeError):
        return name


def cleanup_expired(store: DiskStore, now: float | None = None) -> int:
    """Delete entries whose ``expires_at`` has passed; returns how many were removed.

    Only the first bytes of each file are read. Unreadable entries are left for
    ``spark cache verify`` to report.
    """
    moment = time.time() if now is None else now
    removed = 0
    for entry in store.walk():
        try:
            expires_at = entry_expires_at(entry.path)
        except (OSError, CorruptEntryError, ValueError):
            continue
        if expires_at is not None and moment >= expires_at and store.remove(entry.path):
            removed += 1
    return removed


def entry_expires_at(path: str) -> float | None:
    """An entry file's ``expires_at``, from its first bytes (the whole envelope when a long
    model id pushes it further)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
        try:
            return peek_expires_at(head)
        except CorruptEntryError:
            if len(head) < _HEAD_BYTES:
                raise
            meta, _ = decode_envelope(head + handle.read())
            return meta.expires_at


def remove_stray_temps(store: DiskStore, now: float | None = None) -> int:
    """Delete temp files of writers that died (their pid is gone) or that are over an hour old."""
    moment = time.time() if now is None else now
    removed = 0
    for path in store.temp_files():
        try:
            age = moment - os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        if (age > _TEMP_MAX_AGE_S or not _writer_alive(path)) and store.remove(path):
            removed += 1
    return removed


def _writer_alive(path: str) -> bool:
    try:
        pid = int(os.path.basename(path).split(".")[2])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def evict_lru(store: DiskStore, max_bytes: int, target_ratio: float = 0.9) -> tuple[int, int]:
    """When the directory holds more than ``max_bytes``, delete least recently used entries
    (oldest access time first) until it holds at most ``target_ratio * max_bytes``.

    Returns (entries evicted, bytes left).
    """
    entries = [(e.atime_ns, e.size, e.path) for e in store.walk()]
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return 0, total
    entries.sort()
    target = int(max_bytes * target_ratio)
    evicted = 0
    for _, size, path in entries:
        if total <= target:
            break
        if store.remove(path):
            evicted += 1
        total -= size
    return evicted, total
