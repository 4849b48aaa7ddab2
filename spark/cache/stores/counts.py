"""The chain of changes that keeps each model folder's counts record exact (its bytes and file
are ``count_files.py``); ``get_stats()`` trusts a record that names the folder as it finds it
(identity and modification time), with no listing of the folder (docs/caching.md, "Statistics").

Every change Spark makes to a model folder (a temp file created, renamed into place or removed,
an entry removed) runs in a short section under the record's lock. The section reads the record
and the folder's time; the chain goes on only when the record names this folder at that very
time (nothing changed it unrecorded since). It makes the change, then writes the record with the
folder's new time and the counts the change moved. A change that moves the counts first marks
the record invalid, so a writer killed mid-section leaves an invalid record, never a wrong one;
a broken chain marks it invalid. A folder Spark makes gets a record counted under the lock; a
scan re-bases one when the folder was settled (``summary.SETTLED_NS``) and is unchanged under
the lock. A change that cannot get the lock in time (its holder is stopped or hung) goes on
without it, after spoiling the record (``Handle.spoil``), so that no reader trusts it.

Advisory throughout: a record that is damaged, of another size, a symlink, not a file, or that
cannot be opened, locked or written counts as absent (the folder is scanned), and no failure
here ever fails the change itself.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import struct
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from spark.cache.stores import count_files as files
from spark.cache.stores.names import is_entry_name
from spark.cache.stores.summary import SETTLED_NS

__all__ = ["FolderCounts", "Removed", "Spread"]

logger = logging.getLogger("spark.cache")

_NOTHING = (0, 0)

Removed = tuple[int, int, int, OSError | None]
"""Of removing files: how many were removed, the entries and bytes that moved, a failure."""
Spread = Callable[[Callable[[list[str]], Removed], list[list[str]]], Iterable[Removed]]
_PARTS = 4


_ALL: weakref.WeakSet[FolderCounts] = weakref.WeakSet()


class FolderCounts:
    """The counts records of the model folders of ``root``, by folder path
    (``{root}/{provider}/{model folder}``)."""

    def __init__(self, root: Path | str) -> None:
        self._root = str(root)
        self._handles: dict[str, files.Handle] = {}
        self._dropped: list[files.Handle] = []
        self._guard = threading.Lock()
        weakref.finalize(self, files.close_all, self._handles, self._dropped)
        _ALL.add(self)

    # -- the reader -------------------------------------------------------------------------

    def trusted(self, folder: str, st: os.stat_result) -> tuple[int, int] | None:
        """(entries, bytes) of ``folder`` from its record, when the record describes the folder
        as ``st`` (its ``lstat`` now) shows it; None otherwise. Takes no lock, creates nothing."""
        try:
            fd = files.open_record(self._root, folder, create=False)
        except OSError:
            return None
        if fd is None:
            return None
        try:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode) or found.st_size != files.SIZE:
                return None
            record = files.decode(os.pread(fd, files.SIZE + 1, 0))
        except OSError:
            return None
        finally:
            os.close(fd)
        if record is None or not record.describes(st):
            return None
        return record.entries, record.size

    # -- changes ----------------------------------------------------------------------------

    def create_temp(self, folder: str, folder_fd: int, name: str, flags: int) -> int:
        """``os.open(name, flags, 0o600)`` in the folder: a writer's temp file (no count moves)."""
        opened: list[int] = []

        def create(chained: bool) -> tuple[int, int]:
            opened.append(os.open(name, flags, 0o600, dir_fd=folder_fd))
            return _NOTHING

        self._change(folder, folder_fd, False, create)
        return opened[0]

    def replace(self, folder: str, folder_fd: int, temp: str, name: str, size: int) -> None:
        """Rename the temp file ``temp`` (``size`` bytes) over ``name``: one entry more, or the
        bytes of the one it replaces moved."""

        def rename(chained: bool) -> tuple[int, int]:
            try:
                old = os.stat(name, dir_fd=folder_fd, follow_symlinks=False) if chained else None
            except FileNotFoundError:
                old = None
            os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
            return (1, size) if old is None else (0, size - old.st_size)

        self._change(folder, folder_fd, True, rename)

    def unlink(
        self, folder: str, folder_fd: int, names: list[str], spread: Spread | None = None
    ) -> int:
        """Remove the files ``names`` in one section (an entry moves the counts; a temp file does
        not); how many were removed. ``spread(remove, parts)``, when given, runs ``remove`` on
        each part of ``names`` (on a few threads: a cold ``unlink`` mostly waits for the disk).
        One that is gone, or a folder (not an entry Spark wrote: ``spark cache verify`` reports
        it), is skipped; ``FileNotFoundError`` when none was there (perhaps the folder was
        replaced). Another failure stops the rest: raised once the removed ones are recorded."""
        done: list[Removed] = []

        def change(chained: bool) -> tuple[int, int]:
            def remove(part: list[str]) -> Removed:
                return _remove(folder_fd, part, chained)

            step = -(-len(names) // _PARTS)  # (contiguous parts: neighbours in the folder)
            parts = [names[i : i + step] for i in range(0, len(names), step)] if spread else [names]
            done.extend(spread(remove, parts) if spread else [remove(names)])
            if not any(removed for removed, *_ in done) and all(f is None for *_, f in done):
                raise FileNotFoundError(errno.ENOENT, "not there", names[0])
            return sum(r[1] for r in done), sum(r[2] for r in done)

        self._change(folder, folder_fd, any(map(is_entry_name, names)), change)
        for *_, failure in done:
            if failure is not None:
                raise failure
        return sum(removed for removed, *_ in done)

    def _change(
        self, folder: str, folder_fd: int, moves: bool, change: Callable[[bool], tuple[int, int]]
    ) -> None:
        """Run ``change(chained)`` in a section (``moves``: it may move the counts): it makes the
        change and returns the entries and bytes it moved (``chained``: they are wanted), or
        raises ``OSError`` having changed nothing. Only the change's own exceptions come out;
        the record's failures make it absent."""
        handle = self._held(folder)
        if handle is None:
            change(False)
            return
        fd = handle.fd
        try:
            try:  # the chain: the record read describes the folder as it is
                seen = os.pread(fd, files.READ_SIZE, 0)
                before = os.fstat(folder_fd)
                known, cached = handle.known
                old: files.Record | None = cached if seen == known else files.decode(seen)
                if old is not None and old.mtime_ns != before.st_mtime_ns:
                    if old.ino == before.st_ino and old.dev == before.st_dev:
                        files.put(fd, files.INVALID)  # broken: a change was not recorded
                    old = None  # (a record of another folder is left to describe it)
                elif old is not None and (old.ino != before.st_ino or old.dev != before.st_dev):
                    old = None
                elif old is None and len(seen) > files.SIZE:
                    os.ftruncate(fd, 0)  # (spoiled: a fresh start)
                elif old is not None and moves:
                    # (a process killed before the end leaves no record)
                    files.put(fd, files.INVALID)
            except OSError as exc:
                _given_up(folder, fd, exc)
                old = None
            if old is None:
                change(False)
                return
            try:
                entries, size = change(True)
            except OSError:
                _after_failure(fd, folder_fd, before, old, moves)
                raise
            except BaseException:
                if not moves:
                    files.invalidate(fd)  # (interrupted: whether the change was made is unknown)
                raise
            try:
                after = os.fstat(folder_fd).st_mtime_ns
                if moves or after != old.mtime_ns:
                    figures = (old.dev, old.ino, after, old.entries + entries, old.size + size)
                    new = tuple.__new__(files.Record, figures)  # (a third of ``Record()``'s time)
                    data = files.encode(new)
                    files.put(fd, data)
                    handle.known = (data, new)
            except (OSError, struct.error) as exc:  # (struct.error: below zero, a wrong record)
                _given_up(folder, fd, exc)
        finally:
            handle.release()

    def _take(self, folder: str, handle: files.Handle) -> bool:
        """Both locks of ``handle``; False (the record spoiled) when they were not had."""
        try:
            if handle.take():
                return True
        except OSError as exc:
            logger.debug("cannot lock the counts record of %s: %s", folder, exc)
        handle.spoil()
        return False

    # -- bases ------------------------------------------------------------------------------

    def created(self, folder: str, folder_fd: int) -> None:
        """Base the record of a folder this process just made: counted under the lock (others
        may have written into it already), kept unless the folder changed meanwhile."""
        self._base(folder, folder_fd, lambda before: _count(folder_fd))

    def rebase(
        self, folder: str, before: os.stat_result, started_ns: int, entries: int, size: int
    ) -> None:
        """Record ``entries`` and ``size``, counted by a scan that began at ``started_ns`` when
        the folder was as ``before`` (its ``lstat`` then) shows it: only if it was settled then
        (``summary.SETTLED_NS``) and is unchanged now, under the lock (no Spark change is
        half-way, and any since the scan began moved the folder's time)."""
        if before.st_mtime_ns > started_ns - SETTLED_NS:
            return
        try:
            folder_fd = os.open(folder, files.SUB_FLAGS)
        except OSError:
            return
        scanned = (before.st_dev, before.st_ino, before.st_mtime_ns)

        def counted(now: os.stat_result) -> tuple[int, int] | None:
            same = (now.st_dev, now.st_ino, now.st_mtime_ns) == scanned
            return (entries, size) if same else None

        try:
            self._base(folder, folder_fd, counted)
        finally:
            os.close(folder_fd)

    def _base(
        self,
        folder: str,
        folder_fd: int,
        count: Callable[[os.stat_result], tuple[int, int] | None],
    ) -> None:
        """Under the lock: ``count(folder's stat)``, recorded if the folder did not change."""
        handle = self._held(folder)
        if handle is None:
            return
        try:
            if len(os.pread(handle.fd, files.SIZE + 1, 0)) > files.SIZE:
                os.ftruncate(handle.fd, 0)  # (spoiled: this is a fresh start)
            before = os.fstat(folder_fd)
            counted = count(before)
            after = os.fstat(folder_fd)
            if counted is not None and after.st_mtime_ns == before.st_mtime_ns:
                record = files.Record(after.st_dev, after.st_ino, after.st_mtime_ns, *counted)
                files.put(handle.fd, files.encode(record))
        except (OSError, struct.error) as exc:
            _given_up(folder, handle.fd, exc)
        finally:
            handle.release()

    def forget(self, folder: str) -> None:
        """Remove the record of a folder that was removed (unless it is back already). A process
        holding it opens the new one at its next change (``_held``)."""
        try:
            if os.path.lexists(folder):
                return
            provider_fd = files.provider_folder(self._root, folder, create=False)
            if provider_fd is not None:
                try:
                    os.unlink(folder.rsplit("/", 1)[1], dir_fd=provider_fd)
                finally:
                    os.close(provider_fd)
        except OSError as exc:
            logger.debug("cannot remove the counts record of %s: %s", folder, exc)

    # -- record files -----------------------------------------------------------------------

    def _held(self, folder: str) -> files.Handle | None:
        """The record's handle with both locks taken; None (the change goes on unrecorded)
        when there is no usable record file or the lock was not had (then it is spoiled).

        A record file that is no longer at its path (``forget``, or ``.spark-counts`` removed by
        hand) is let go and the one there now opened: every process locks the same file."""
        for _ in range(2):
            handle = self._handles.get(folder) or self._open(folder)
            if handle is None or not self._take(folder, handle):
                return None
            try:
                if os.fstat(handle.fd).st_nlink:
                    return handle
            except OSError:
                pass
            handle.release()
            self._drop(folder, handle)
        return None

    def _drop(self, folder: str, handle: files.Handle) -> None:
        with self._guard:
            if self._handles.get(folder) is handle:
                del self._handles[folder]
                self._dropped.append(handle)  # (closed with the store: a thread may still use it)

    def _open(self, folder: str) -> files.Handle | None:
        with self._guard:
            handle = self._handles.get(folder)
            if handle is not None:
                return handle
            try:
                fd = files.open_record(self._root, folder, create=True)
            except OSError as exc:  # (a read-only directory, a symlink, a folder in its place)
                logger.debug("no counts record for %s: %s", folder, exc)
                return None
            if fd is None:
                return None
            try:
                found = os.fstat(fd)
            except OSError:
                found = None
            if found is None or not stat.S_ISREG(found.st_mode) or found.st_size > files.MAX_OPENED:
                os.close(fd)  # (not Spark's record: never written)
                return None
            handle = self._handles[folder] = files.Handle(fd)
            return handle

    def _reset(self) -> None:
        """In a forked child: the parent's open files (and their flocks) are not this one's."""
        for handle in [*self._handles.values(), *self._dropped]:
            with contextlib.suppress(OSError):
                os.close(handle.fd)  # (the parent's copy keeps its lock)
        self._handles.clear()
        self._dropped.clear()
        self._guard = threading.Lock()


def _remove(folder_fd: int, names: list[str], counted: bool) -> Removed:
    """Unlink ``names`` (each entry's size taken first when ``counted``); stops at a failure
    other than a file gone or a folder."""
    removed = entries = size = 0
    for name in names:
        try:
            if counted and is_entry_name(name):
                old = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
                os.unlink(name, dir_fd=folder_fd)
                entries, size = entries - 1, size - old.st_size
            else:
                os.unlink(name, dir_fd=folder_fd)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        except OSError as exc:
            return removed, entries, size, exc
        removed += 1
    return removed, entries, size, None


def _after_failure(
    fd: int, folder_fd: int, before: os.stat_result, old: files.Record, pending: bool
) -> None:
    """After a change that failed whole (``OSError``): the old record again if the folder's time
    did not move, else (something else changed it) none."""
    try:
        if os.fstat(folder_fd).st_mtime_ns == before.st_mtime_ns:
            if pending:
                files.put(fd, files.encode(old))
        elif not pending:
            files.put(fd, files.INVALID)
    except OSError:
        files.invalidate(fd)


def _given_up(folder: str, fd: int, exc: BaseException) -> None:
    logger.debug("counts record of %s given up: %s", folder, exc)
    files.invalidate(fd)


def _count(folder_fd: int) -> tuple[int, int]:
    """(entry files, their bytes) of a folder Spark just made (a few files at most)."""
    entries = size = 0
    with os.scandir(folder_fd) as found:
        for item in found:
            if is_entry_name(item.name):
                with contextlib.suppress(FileNotFoundError):
                    size += item.stat(follow_symlinks=False).st_size
                    entries += 1
    return entries, size


def _after_fork() -> None:
    for counts in list(_ALL):
        counts._reset()


os.register_at_fork(after_in_child=_after_fork)
