"""Whole-directory work on a ``DiskStore``: statistics, expiry cleanup, LRU eviction, stray temps.

Each function lists every model folder once with ``scandir`` and takes each file's ``lstat``
from it (the loops are in ``folder_work.py``). Statistics take a folder's figures from its
counts record when the chain of Spark's changes to it is unbroken (``counts.py``), else from the
folder summary for folders unchanged since the last scan (``summary.py``), else from a scan
(which re-bases the record); cleanup judges most files by their expiry stamp,
the modification time (``hints.py``), and reads only the envelope of the others, never a payload
(docs/caching.md, "Entry files" and "Statistics").
"""

from __future__ import annotations

import heapq
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark.cache.reader import StoredEntry, Where, read_entry
from spark.cache.stores.base import EntryRef, EntryStore, remove_each
from spark.cache.stores.disk import DiskStore, temps_in
from spark.cache.stores.folder_work import (
    Folder,
    folder_model_id,
    model_folders,
    model_id_of,
    scan_folder,
    still_fits,
)
from spark.cache.stores.folders import FolderListing
from spark.cache.stores.hints import live_by_hint, stamp_passed
from spark.cache.stores.names import is_entry_name, is_temp_name
from spark.cache.stores.removals import Removals
from spark.cache.stores.summary import FolderSummary, load_summary, save_summary, settled

__all__ = [
    "DirectoryStats",
    "clean_disk",
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
        self.add_many(entry.provider, model_id, 1, entry.size)

    def add_many(self, provider: str, model_id: str, entries: int, size: int) -> None:
        """Count ``entries`` files of ``size`` bytes in all (none: nothing is listed)."""
        if not entries:
            return
        self.total_entries += entries
        self.total_size_bytes += size
        self.entries_by_provider[provider] += entries
        self.bytes_by_provider[provider] += size
        self.entries_by_model.setdefault(provider, Counter())[model_id] += entries
        self.bytes_by_model.setdefault(provider, Counter())[model_id] += size

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


def scan_stats(store: EntryStore, *, keep_summary: bool = False) -> DirectoryStats:
    """Count every entry file by provider and model id.

    On disk, a folder unchanged since a scan that was recorded in the folder summary is not
    listed again; ``keep_summary`` records this scan's figures (a cache that only reads keeps no
    file of its own). Elsewhere, the store's ``walk``.
    """
    if isinstance(store, DiskStore):
        return _disk_stats(store, keep_summary)
    stats = DirectoryStats()
    names: dict[str, str] = {}
    for entry in store.walk():
        folder = entry.location.rsplit("/", 1)[0]
        model_id = names.get(folder)
        if model_id is None:
            model_id = names[folder] = model_id_of(store, entry.provider, entry.model_slot, [entry])
        stats.add(entry, model_id)
    return stats


def _disk_stats(store: DiskStore, keep_summary: bool) -> DirectoryStats:
    started_ns = time.time_ns()
    known = load_summary(store.root)
    kept: dict[str, FolderSummary] = {}
    stats = DirectoryStats()
    for folder in model_folders(store):
        summary = known.get(folder.name)
        if summary is None or not still_fits(summary, folder):
            summary = _counted(store, folder, summary, started_ns, keep_summary)
            if settled(folder.st, folder.path, started_ns):
                kept[folder.name] = summary
        else:
            kept[folder.name] = summary
        stats.add_many(folder.provider, summary.model_id, summary.entries, summary.size)
    if keep_summary and kept != known:
        save_summary(store.root, kept)
    return stats


def _counted(
    store: DiskStore, folder: Folder, known: FolderSummary | None, started_ns: int, rebase: bool
) -> FolderSummary:
    """A folder's figures from its counts record when that describes the folder as listed; else
    scanned, and (``rebase``: a cache that writes) the record re-based on the scan."""
    trusted = store.counts.trusted(folder.path, folder.st)
    if trusted is None:
        summary = scan_folder(store, folder, known)
        if rebase:
            store.counts.rebase(folder.path, folder.st, started_ns, summary.entries, summary.size)
        return summary
    st = folder.st
    model_id = folder_model_id(store, folder, known)
    return FolderSummary(st.st_dev, st.st_ino, st.st_mtime_ns, *trusted, model_id)


def cleanup_expired(store: EntryStore, now: float | None = None) -> int:
    """Delete entries whose ``expires_at`` has passed; returns how many were removed.

    On disk, one pass over each model folder (``clean_disk``, which also removes stray temps).
    Elsewhere each entry's envelope is read (never its payload), without counting as a use,
    and ``EntryMeta.is_expired`` decides. Unusable entries are left for ``spark cache verify``
    to report; entries and folders that other processes remove meanwhile are skipped.
    """
    moment = time.time() if now is None else now
    if isinstance(store, DiskStore):
        return _disk_cleanup(store, moment)[0]
    return sum(remove_if_expired(store, entry, moment) for entry in store.walk())


def clean_disk(store: DiskStore, now: float | None = None) -> int:
    """``cleanup_expired`` and ``remove_stray_temps`` of a disk cache in one pass over it;
    returns the entries removed.

    Each file's ``lstat`` decides what is read (``hints.py``): a modification time still to
    come means not expired (skipped unread); a writer's expiry stamp that has passed means
    expired (removed unread); any other file (copied, checked out, unstamped) has its envelope
    read and ``EntryMeta.is_expired`` decides. Folders it left unchanged are recorded in the
    folder summary.
    """
    moment = time.time() if now is None else now
    removed, temps = _disk_cleanup(store, moment)
    _remove_temps(store, itertools.chain(temps_in(str(store.root)), temps), moment)
    return removed


def _disk_cleanup(store: DiskStore, now: float) -> tuple[int, list[str]]:
    started_ns, now_ns = time.time_ns(), int(now * 1e9)
    known = load_summary(store.root)
    kept: dict[str, FolderSummary] = {}
    removed, temps = 0, list[str]()
    removals = Removals(store)
    try:
        for folder in model_folders(store):
            entries, size, read_removed, scheduled = _clean_folder(
                store, folder, now, now_ns, temps, removals
            )
            removed += read_removed
            if read_removed or scheduled or not settled(folder.st, folder.path, started_ns):
                continue
            model_id = folder_model_id(store, folder, known.get(folder.name))
            st = folder.st
            kept[folder.name] = FolderSummary(
                st.st_dev, st.st_ino, st.st_mtime_ns, entries, size, model_id
            )
            store.counts.rebase(folder.path, st, started_ns, entries, size)
    finally:
        stamped = removals.finish()
    if kept and kept != known:
        save_summary(store.root, kept)
    return removed + stamped, temps


def _clean_folder(
    store: DiskStore,
    folder: Folder,
    now: float,
    now_ns: int,
    temps: list[str],
    removals: Removals,
) -> tuple[int, int, int, int]:
    """(entries kept, their bytes, entries read and removed, entries given to ``removals``)
    of one model folder; its temp files are added to ``temps``."""
    entries = size = removed = scheduled = 0
    try:
        found = FolderListing(folder.path)
    except (FileNotFoundError, NotADirectoryError):
        return 0, 0, 0, 0
    with found as items:
        for item in items:
            name = item.name
            if not is_entry_name(name):
                if is_temp_name(name):
                    temps.append(f"{folder.path}/{name}")
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not live_by_hint(st.st_mtime_ns, now_ns):
                path = f"{folder.path}/{name}"
                if stamp_passed(st, now_ns):
                    removals.add(path)  # (counted once removed: ``removals.finish``)
                    scheduled += 1
                    continue
                where = Where(name[:-5], folder.provider, model_slot=folder.slot)
                if _expired(store, path, where, now) and store.remove(path):
                    removed += 1
                    continue
            entries += 1
            size += st.st_size
    return entries, size, removed, scheduled


def _expired(store: EntryStore, location: str, where: Where, now: float) -> bool:
    found = read_entry(store, location, where=where, with_payload=False, touch=False)
    return isinstance(found, StoredEntry) and found.meta.is_expired(now)


def remove_if_expired(store: EntryStore, entry: EntryRef, now: float) -> bool:
    """Delete ``entry`` if its ``expires_at`` has passed (``EntryMeta.is_expired``, the one
    expiry rule); an unusable entry is kept for ``spark cache verify`` to report. A disk file
    is judged by its ``lstat`` first, as in ``clean_disk``."""
    if isinstance(store, DiskStore):
        now_ns = int(now * 1e9)
        try:
            st = os.lstat(entry.location)
        except OSError:
            return False  # (gone meanwhile; anything else the reader would refuse too)
        if live_by_hint(st.st_mtime_ns, now_ns):
            return False
        if stamp_passed(st, now_ns):
            return store.remove(entry.location)
    return _expired(store, entry.location, Where.of(entry), now) and store.remove(entry.location)


def remove_stray_temps(store: DiskStore, now: float | None = None, also: Iterable[str] = ()) -> int:
    """Delete temp files of writers that died (their pid is gone) or that are over an hour old:
    the store's (entries, ``.gitignore``, the run record, the folder summary) and the paths in
    ``also`` (e.g. a key file's, from ``temp_files_beside``)."""
    moment = time.time() if now is None else now
    return _remove_temps(store, itertools.chain(store.temp_files(), also), moment)


def _remove_temps(store: DiskStore, paths: Iterable[str], now: float) -> int:
    """Remove the temp files among ``paths`` whose writer is gone or that are over an hour old
    (``store.remove``: one in a model folder keeps its counts record's chain).

    The age is since the earlier of the file's modification and status-change times: an entry's
    temp file may already carry its expiry stamp (a modification time in the future) when its
    writer dies, and its status-change time is still when it was written.
    """
    removed = 0
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        age = now - min(st.st_mtime, st.st_ctime)
        if (age > _TEMP_MAX_AGE_S or not _writer_alive(path)) and store.remove(path):
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

    Returns (entries evicted, bytes left). The size comes from ``scan_stats`` (the folder
    summary where it holds); only when over the limit are the files listed again, keeping just
    the oldest ones that cover the excess (bounded memory: no list of every entry).
    """
    total = scan_stats(store, keep_summary=True).total_size_bytes
    if total <= max_bytes:
        return 0, total
    target = int(max_bytes * target_ratio)
    chosen = []
    for _, size, path in _oldest_covering(store.walk(), total - target):
        if total <= target:
            break
        chosen.append(path)
        total -= size
    chosen.sort()  # (a folder's files together: removed a section of its counts record at a time)
    evicted = remove_each(store, chosen)
    return evicted, total


def _oldest_covering(entries: Iterable[EntryRef], excess: int) -> list[tuple[int, int, str]]:
    """The least recently used of ``entries`` whose sizes add up to at least ``excess`` (fewer
    only when all of them do not), oldest first: a heap of the oldest so far, trimmed of its
    newest while the rest still covers the excess."""
    heap: list[tuple[int, int, int, str]] = []  # (-used_ns, -size, n, path): newest on top
    held = 0
    for n, entry in enumerate(entries):
        heapq.heappush(heap, (-entry.used_ns, -entry.size, n, entry.location))
        held += entry.size
        while len(heap) > 1 and held + heap[0][1] >= excess:
            held += heapq.heappop(heap)[1]
    return sorted((-used, -size, path) for used, size, _, path in heap)
