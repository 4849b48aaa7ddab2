"""The disk store: moves entry bytes to and from ``{root}/{provider}/{model}/{key}.json``.

It knows paths, atomic writes and directory walks, nothing about what an entry means. What the
names of its folders and files mean (the path-safe model folder, entry and temp files) is in
``names.py``; they are importable from here too. Every change to a model folder goes through
its counts record (``counts.py``), which lets ``get_stats()`` skip listing it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from spark.cache.keys import is_key
from spark.cache.stores.base import (
    MAX_ENTRY_BYTES,
    USE_RESOLUTION_S,
    EntryRef,
    EntryRefusedError,
    Version,
)
from spark.cache.stores.counts import FolderCounts, Spread
from spark.cache.stores.folders import FolderHandles, FolderListing
from spark.cache.stores.hints import expiry_hint_ns, stamp_expiry
from spark.cache.stores.names import (
    TEMP_SUFFIX,
    check_provider,
    is_entry_name,
    is_temp_name,
    quote_model_id,
    unquote_model_id,
)

if TYPE_CHECKING:
    from spark.cache.ledger import LedgerSink

__all__ = [
    "DiskStore",
    "check_provider",
    "is_entry_name",
    "is_temp_name",
    "quote_model_id",
    "remove_file",
    "temps_in",
    "unquote_model_id",
]

_USE_RESOLUTION_NS = int(USE_RESOLUTION_S * 1e9)
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
# The access time is Spark's to set (LRU eviction): not the kernel's on every read (``relatime``
# would, since an entry's mtime is its expiry). Only the file's owner may ask for it.
_NOATIME = getattr(os, "O_NOATIME", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
T = TypeVar("T")


class DiskStore:
    """Byte storage under ``root``: atomic writes (temp file + rename), reads that never write."""

    validates_cheaply = True  # a version is one stat()
    evicts = True  # max_cache_size_mb is ours to enforce

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dirs: dict[tuple[str, str], str] = {}
        self.counts = FolderCounts(root)
        self._folders = FolderHandles(created=self.counts.created)

    def describe(self) -> str:
        """The directory."""
        return str(self.root)

    def location(self, provider: str, model_id: str, key: str) -> str:
        """The file of an entry (the directory part is memoized: this is on the hit path)."""
        folder = self._dirs.get((provider, model_id))
        if folder is None:
            folder = os.path.join(self.root, check_provider(provider), quote_model_id(model_id))
            self._dirs[(provider, model_id)] = folder
        return f"{folder}/{key}.json"

    def path_in(self, provider: str, model_slot: str, key: str) -> str:
        """The file of an entry given its (already path-safe) model folder name."""
        return f"{self.root}/{provider}/{model_slot}/{key}.json"

    def read(self, path: str, *, touch: bool = True) -> tuple[bytes, Version] | None:
        """The bytes of a file and their version, or None when it does not exist.

        Bounded: only a regular file of at most ``MAX_ENTRY_BYTES`` is read, opened without
        following a symlink and without blocking (a FIFO is refused, not waited on), in a folder
        chain that is no symlink either (``FolderHandles``); anything else raises
        ``EntryRefusedError``. A read is a use for LRU eviction (unless ``touch`` is False): it
        sets the file's access time (through the open descriptor, keeping the modification
        time) unless that is under ``USE_RESOLUTION_S`` old; the bytes are never rewritten.
        """
        folder, name = path.rsplit("/", 1)
        fd = self._in_folder(folder, lambda dfd: _open_entry(name, dfd))
        if fd is None:
            return None
        try:  # os-level calls: a third of the cost of open() + BufferedReader on the hit path
            st = os.fstat(fd)
            _check_readable(st)
            data = os.read(fd, st.st_size)
            while len(data) < st.st_size:  # a short read; entries are never written in place
                more = os.read(fd, st.st_size - len(data))
                if not more:
                    break
                data += more
            if touch:
                now_ns = time.time_ns()
                if now_ns - st.st_atime_ns > _USE_RESOLUTION_NS:
                    with contextlib.suppress(OSError):  # a read-only checkout (CI replay)
                        os.utime(fd, ns=(now_ns, st.st_mtime_ns))
        finally:
            os.close(fd)
        return data, (st.st_ino, st.st_mtime_ns, st.st_size)

    def _in_folder(self, folder: str, act: Callable[[int], T]) -> T | None:
        """``act(folder_fd)``, or None when the file (or the folder) is not there. A folder that
        another process removed or replaced meanwhile is opened again once."""
        for _ in range(2):
            dfd = self._folders.get(folder)
            if dfd is None:
                return None
            try:
                return act(dfd)
            except (FileNotFoundError, NotADirectoryError):
                if not self._folders.renew(folder, dfd):
                    return None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise EntryRefusedError("a symlink (not followed)") from None
                raise
        return None

    def write(self, path: str, data: bytes, expires_at: float | None = None) -> Version:
        """Write atomically: a private temp file in the same folder, then ``os.replace``, both
        relative to the held folder (no symlink is followed on the way).

        The file's modification time becomes an expiry hint (``hints.stamp_expiry``):
        ``expires_at`` (None: the envelope's own, and a far-future time for an entry that never
        expires), so ``cleanup_expired`` need not read a file whose hint is still to come. The
        entry's metadata stays the only judge of expiry; the hit path never looks at the hint.

        A crash leaves at most a ``.{key}.{pid}.*.tmp`` file, removed by ``remove_stray_temps``.
        Raises ``OSError`` (unwritable, disk full); the temp file is removed first.
        """
        if len(data) > MAX_ENTRY_BYTES:
            raise EntryRefusedError(f"entry of {len(data)} bytes is over the limit of one entry")
        folder, name = path.rsplit("/", 1)
        temp = f".{name[:-5]}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        for attempt in range(2):
            opened = self._folders.get(folder, create=True)
            assert opened is not None  # (created)
            dfd = opened  # (an int from here on, in the handlers below too)
            try:
                fd = self.counts.create_temp(folder, dfd, temp, _WRITE_FLAGS)
                break
            except FileNotFoundError:  # the folder was removed meanwhile: make it again
                if attempt or not self._folders.renew(folder, dfd):
                    raise
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()  # (the hint goes on after the data: a write resets the mtime)
                now_ns = time.time_ns()
                hint = expiry_hint_ns(expires_at, data, now_ns)
                st = stamp_expiry(handle.fileno(), hint, now_ns)
            self.counts.replace(folder, dfd, temp, name, st.st_size)
        except BaseException:
            with contextlib.suppress(OSError):
                self.counts.unlink(folder, dfd, [temp])
            raise
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def version(self, path: str) -> Version | None:
        """The current version of a file (not followed through a symlink), or None."""
        folder, name = path.rsplit("/", 1)
        st = self._in_folder(folder, lambda dfd: os.stat(name, dir_fd=dfd, follow_symlinks=False))
        return None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)

    def touch(self, path: str, version: Version, now_ns: int) -> None:
        """Record a use for LRU eviction: set atime, keep mtime (the entry is not rewritten)."""
        folder, name = path.rsplit("/", 1)
        with contextlib.suppress(OSError):  # a read-only checkout (CI replay) keeps its atime
            self._in_folder(
                folder,
                lambda dfd: os.utime(
                    name, ns=(now_ns, version[1]), dir_fd=dfd, follow_symlinks=False
                ),
            )

    def remove(self, path: str) -> bool:
        """Delete one file; False when it was already gone (or is a folder)."""
        return self.remove_all([path]) == 1

    def remove_all(self, paths: list[str], spread: Spread | None = None) -> int:
        """Delete files; how many were removed (not already gone). Those of one model folder in
        a row are removed relative to the held folder in one section of its counts record
        (``counts.py``; ``spread``: on a few threads), none through a symlinked folder; the
        root's own files (temps, bookkeeping) by path."""
        removed = 0
        for folder, group in itertools.groupby(paths, lambda path: path.rsplit("/", 1)[0]):
            removed += self._remove_in(folder, [path.rsplit("/", 1)[1] for path in group], spread)
        return removed

    def _remove_in(self, folder: str, names: list[str], spread: Spread | None) -> int:
        if folder.rsplit("/", 2)[0] != str(self.root):  # (the root's own files, by path)
            return sum(remove_file(f"{folder}/{name}") for name in names)
        act = lambda dfd: self.counts.unlink(folder, dfd, names, spread)  # noqa: E731
        try:
            return self._in_folder(folder, act) or 0
        except (EntryRefusedError, NotADirectoryError):  # a symlink or a file where the folder
            return 0  # belongs: nothing is removed through it

    def find(self, key: str) -> str | None:
        """The path of ``key`` in any provider/model folder, or None."""
        if not is_key(key):
            return None
        for provider_dir in _subdirs(str(self.root)):
            for model_slot in _subdirs(provider_dir):
                candidate = f"{model_slot}/{key}.json"
                if os.path.lexists(candidate):
                    return candidate
        return None

    def walk(
        self, provider: str | None = None, model_slot: str | None = None
    ) -> Iterator[EntryRef]:
        """Every entry file (optionally of one provider / model folder), with size and atime."""
        for provider_path in _subdirs(str(self.root)):
            provider_name = os.path.basename(provider_path)
            if provider is not None and provider_name != provider:
                continue
            for model_path in _subdirs(provider_path):
                model_name = os.path.basename(model_path)
                if model_slot is not None and model_name != model_slot:
                    continue
                yield from _entries_in(model_path, provider_name, model_name)

    def temp_files(self) -> Iterator[str]:
        """Paths of temp files left by running or crashed writers: in model folders (entries)
        and in the root (``.gitignore``, the run record). Folders that vanish meanwhile are
        skipped."""
        yield from temps_in(str(self.root))
        for provider_path in _subdirs(str(self.root)):
            for model_path in _subdirs(provider_path):
                yield from temps_in(model_path)

    # Whole-directory work lives in maintenance.py (imported here lazily: it imports this module).

    def cleanup_expired(self, now: float | None = None) -> int:
        """Delete expired entries and the temp files of crashed writers (one pass)."""
        from spark.cache.stores import maintenance

        return maintenance.clean_disk(self, now)

    def evict(self, max_bytes: int) -> tuple[int, int]:
        """Delete least recently used entries (oldest atime) while over ``max_bytes``."""
        from spark.cache.stores import maintenance

        return maintenance.evict_lru(self, max_bytes)

    def after_clear(self, provider: str | None = None, model_slot: str | None = None) -> None:
        """Remove the folders a bulk delete emptied."""
        self.prune_empty_dirs()

    def ledger_sink(self) -> LedgerSink:
        """The SQLite ledger beside the entries."""
        from spark.cache.ledger import SQLiteLedger

        return SQLiteLedger(self.root)

    def try_lock(self, key: str) -> str | None:
        """No cross-process claim: concurrent writers of one key each write a whole file."""
        return ""

    def renew_lock(self, key: str, token: str) -> bool:
        """Nothing to renew."""
        return True

    def unlock(self, key: str, token: str) -> None:
        """Nothing to release."""

    def rebuild_index(self, repair: bool = False) -> tuple[int, int]:
        """Nothing to rebuild: the directory is its own index."""
        return 0, 0

    def prune_empty_dirs(self) -> None:
        """Remove empty provider/model folders (a concurrent writer re-creates them)."""
        for provider_path in _subdirs(str(self.root)):
            for model_path in _subdirs(provider_path):
                if _rmdir(model_path):
                    self.counts.forget(model_path)
            _rmdir(provider_path)
        self._dirs.clear()
        self._folders.forget_all()


def _entries_in(folder: str, provider: str, model_slot: str) -> Iterator[EntryRef]:
    try:
        found = FolderListing(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    with found as items:
        for item in items:
            name = item.name
            if not is_entry_name(name):
                continue
            try:
                st = item.stat(follow_symlinks=False)  # a symlink is listed (and refused)
            except FileNotFoundError:
                continue
            path = f"{folder}/{name}"
            yield EntryRef(path, provider, model_slot, name[:-5], st.st_size, st.st_atime_ns)


def _open_entry(name: str, folder_fd: int) -> int:
    try:
        return os.open(name, _READ_FLAGS | _NOATIME, dir_fd=folder_fd)
    except PermissionError as exc:  # not the owner (O_NOATIME is the owner's): read it anyway
        if exc.errno != errno.EPERM or not _NOATIME:
            raise
        return os.open(name, _READ_FLAGS, dir_fd=folder_fd)


def temps_in(folder: str) -> list[str]:
    """The temp files directly in ``folder`` (none when it is gone)."""
    try:
        with os.scandir(folder) as found:
            return [item.path for item in found if is_temp_name(item.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _check_readable(st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise EntryRefusedError("not a regular file")
    if st.st_size > MAX_ENTRY_BYTES:
        raise EntryRefusedError(
            f"{st.st_size} bytes, over the limit of one entry ({MAX_ENTRY_BYTES})"
        )


def _subdirs(path: str) -> list[str]:
    """The folders in ``path`` but dot folders (bookkeeping: ``.spark-counts``)."""
    try:
        with os.scandir(path) as found:
            return [i.path for i in found if i.is_dir(follow_symlinks=False) and i.name[0] != "."]
    except (FileNotFoundError, NotADirectoryError):
        return []


def remove_file(path: str) -> bool:
    """Remove a file; False when it was gone, or is a folder (not an entry Spark wrote:
    ``spark cache verify`` reports it)."""
    try:
        os.unlink(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return True


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True
