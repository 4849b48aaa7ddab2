"""The per-folder loops of whole-directory work on a ``DiskStore``: listing the model folders,
counting one (one ``lstat`` per file, no object per entry) and naming its model.
``maintenance.py`` composes them (and ``removals.py``, which deletes files).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from spark.cache.reader import StoredEntry, Where, read_entry
from spark.cache.stores.base import EntryRef, EntryStore
from spark.cache.stores.disk import DiskStore
from spark.cache.stores.folders import FolderListing
from spark.cache.stores.names import is_entry_name, quote_model_id, unquote_model_id
from spark.cache.stores.summary import FolderSummary

__all__ = [
    "Folder",
    "count_folder",
    "folder_model_id",
    "model_folders",
    "model_id_of",
    "safe_unquote",
    "scan_folder",
    "still_fits",
]

_NAME_READS = 8  # entries tried for the full model id of a folder with a hashed (long) name


@dataclass(frozen=True, slots=True)
class Folder:
    """A model folder found by listing the root: provider, folder name, path, its ``lstat``."""

    provider: str
    slot: str
    path: str
    st: os.stat_result

    @property
    def name(self) -> str:
        """Its name in the folder summary."""
        return f"{self.provider}/{self.slot}"


def still_fits(summary: FolderSummary, folder: Folder) -> bool:
    """Whether a recorded folder is unchanged and its model id is one its name allows (the
    decoded name; for a hashed name an id that hashes to it, or the name itself)."""
    if not summary.describes(folder.st):
        return False
    decoded = safe_unquote(folder.slot)
    if decoded is not None:
        return summary.model_id == decoded
    return summary.model_id == folder.slot or quote_model_id(summary.model_id) == folder.slot


def scan_folder(store: DiskStore, folder: Folder, known: FolderSummary | None) -> FolderSummary:
    """A folder's figures, counted now (``known``: the summary's outdated ones, if any)."""
    entries, size = count_folder(folder.path)
    model_id = folder_model_id(store, folder, known)
    st = folder.st
    return FolderSummary(st.st_dev, st.st_ino, st.st_mtime_ns, entries, size, model_id)


def model_folders(store: DiskStore) -> Iterator[Folder]:
    """Every ``{provider}/{model}`` folder (no symlink), as ``walk`` visits them."""
    for provider in _subfolders(str(store.root)):
        for model in _subfolders(provider.path):
            try:
                st = model.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield Folder(provider.name, model.name, model.path, st)


def _subfolders(path: str) -> list[os.DirEntry[str]]:
    """The folders in ``path`` but dot folders (bookkeeping: ``.spark-counts``)."""
    try:
        with os.scandir(path) as found:
            return [i for i in found if i.is_dir(follow_symlinks=False) and i.name[0] != "."]
    except (FileNotFoundError, NotADirectoryError):
        return []


def count_folder(folder: str) -> tuple[int, int]:
    """(entry files, their bytes) in one model folder: the tight loop of a full scan (one
    ``lstat`` per file, no object per entry)."""
    entries = size = 0
    try:
        found = FolderListing(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0, 0
    with found as items:
        for item in items:
            if not is_entry_name(item.name):
                continue
            try:
                size += item.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            entries += 1
    return entries, size


def folder_model_id(store: DiskStore, folder: Folder, known: FolderSummary | None) -> str:
    """The model id a folder's entries are counted under: its name decoded, or for a hashed
    (long) name the full id from the summary (when it hashes to this name) or an entry."""
    model_id = safe_unquote(folder.slot)
    if model_id is not None:
        return model_id
    if known is not None and quote_model_id(known.model_id) == folder.slot:
        return known.model_id
    return model_id_of(store, folder.provider, folder.slot, _first_entries(store, folder))


def _first_entries(store: DiskStore, folder: Folder) -> list[EntryRef]:
    return list(itertools.islice(store.walk(folder.provider, folder.slot), _NAME_READS))


def model_id_of(store: EntryStore, provider: str, slot: str, entries: Iterable[EntryRef]) -> str:
    model_id = safe_unquote(slot)
    if model_id is not None:
        return model_id
    # A long id is hashed in its folder name; its entries' metadata has it in full.
    for entry in entries:
        found = read_entry(
            store, entry.location, where=Where.of(entry), with_payload=False, touch=False
        )
        if isinstance(found, StoredEntry):
            return found.meta.model_id
    return slot


def safe_unquote(name: str) -> str | None:
    try:
        return unquote_model_id(name)
    except (ValueError, UnicodeDecodeError):
        return name
