"""Whole-directory work on a ``DiskStore``: statistics, expiry cleanup, LRU eviction, stray temps.

Each function walks the tree once with ``scandir`` and reads at most the first bytes of a file, so
it stays fast at 100,000 entries.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark.cache.reader import StoredEntry, Where, read_entry
from spark.cache.stores.base import EntryRef, EntryStore
from spark.cache.stores.disk import DiskStore, remove_file, unquote_model_id

__all__ = [
    "DirectoryStats",
    "cleanup_expired",
    "evict_lru",
    "remove_if_expired",
    "remove_stray_temps",
    "scan_stats",
    "temp_files_beside",
]

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

    def add(self, entry: EntryRef, model_id: str) -> None:
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
        model_id = names.get(entry.location.rsplit("/", 1)[0])
        if model_id is None:
            model_id = _model_id_of(store, entry)
            names[entry.location.rsplit("/", 1)[0]] = model_id
        stats.add(entry, model_id)
    return stats


def _model_id_of(store: EntryStore, entry: EntryRef) -> str:
    model_id = _safe_unquote(entry.model_slot)
    if model_id is not None:
        return model_id
    # A long id is hashed in its folder name; its metadata has it in full.
    found = read_entry(
        store, entry.location, where=Where.of(entry), with_payload=False, touch=False
    )
    return found.meta.model_id if isinstance(found, StoredEntry) else entry.model_slot


def _safe_unquote(name: str) -> str | None:
    try:
        return unquote_model_id(name)
    except (ValueError, UnicodeDecodeError):
        return name


def cleanup_expired(store: EntryStore, now: float | None = None) -> int:
    """Delete entries whose ``expires_at`` has passed; returns how many were removed.

    The envelope of each entry is read (never its payload), without counting as a use.
    Unusable entries are left for ``spark cache verify`` to report; entries and folders that
    other processes remove meanwhile are skipped.
    """
    moment = time.time() if now is None else now
    return sum(remove_if_expired(store, entry, moment) for entry in store.walk())


def remove_if_expired(store: EntryStore, entry: EntryRef, now: float) -> bool:
    """Delete ``entry`` if its ``expires_at`` has passed (``EntryMeta.is_expired``, the one
    expiry rule); an unusable entry is kept for ``spark cache verify`` to report."""
    found = read_entry(
        store, entry.location, where=Where.of(entry), with_payload=False, touch=False
    )
    return (
        isinstance(found, StoredEntry)
        and found.meta.is_expired(now)
        and store.remove(entry.location)
    )


def remove_stray_temps(store: DiskStore, now: float | None = None, also: Iterable[str] = ()) -> int:
    """Delete temp files of writers that died (their pid is gone) or that are over an hour old:
    the store's (entries, ``.gitignore``, the run record) and the paths in ``also`` (e.g. a key
    file's, from ``temp_files_beside``)."""
    moment = time.time() if now is None else now
    removed = 0
    for path in itertools.chain(store.temp_files(), also):
        try:
            age = moment - os.lstat(path).st_mtime
        except FileNotFoundError:
            continue
        if (age > _TEMP_MAX_AGE_S or not _writer_alive(path)) and remove_file(path):
            removed += 1
    return removed


def temp_files_beside(path: Path) -> list[str]:
    """The temp files an atomic rewrite of ``path`` leaves when its writer dies
    (``.{name}.{pid}.{hex}.tmp`` in the same folder)."""
    prefix = f".{path.name}."
    try:
        with os.scandir(path.parent) as found:
            return [i.path for i in found if i.name.startswith(prefix) and i.name.endswith(".tmp")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _writer_alive(path: str) -> bool:
    """Whether the process named in a temp file's name (``….{pid}.{hex}.tmp``) still runs."""
    try:
        pid = int(os.path.basename(path).split(".")[-3])
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
    entries = [(e.used_ns, e.size, e.location) for e in store.walk()]
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
