"""Open descriptors of a disk cache's model folders, opened without following any symlink.

Entry files are opened relative to a held folder descriptor (``dir_fd``), each folder of the
chain opened with ``O_NOFOLLOW | O_DIRECTORY`` below the cache root: a provider or model folder
that is a symlink is refused, and one swapped for a symlink later cannot redirect a read or a
write, because the real folder is the one held. A folder another process removed (or replaced)
is noticed when a file is missing from it, and opened again. Scans list a model folder through
a descriptor too (``FolderListing``). See docs/caching.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import weakref
from collections.abc import Callable, Iterator

from spark.cache.stores.base import EntryRefusedError

__all__ = ["FolderHandles", "FolderListing", "open_subfolder"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_RETIRED_KEPT = 64  # replaced descriptors another thread may still be using, closed later


class FolderHandles:
    """Descriptors of ``{root}/{provider}/{model}`` folders, by path, opened on first use."""

    def __init__(self, created: Callable[[str, int], None] | None = None) -> None:
        """``created(folder, fd)`` is called after this process made a model folder."""
        self._created = created
        self._fds: dict[str, int] = {}
        self._retired: list[int] = []
        self._lock = threading.Lock()
        # The descriptors are closed with their store (no leak from short-lived managers).
        weakref.finalize(self, _close_all, self._fds, self._retired)

    def get(self, folder: str, *, create: bool = False) -> int | None:
        """The descriptor of ``folder`` (created with ``create``); None when it does not exist.

        ``EntryRefusedError`` when the provider or model folder is a symlink or not a folder.
        """
        fd = self._fds.get(folder)
        if fd is not None:
            return fd
        made: list[bool] = []
        with self._lock:
            fd = self._fds.get(folder)
            if fd is None:
                fd = _open_chain(folder, create, made)
                if fd is not None:
                    self._fds[folder] = fd
        if made and fd is not None and self._created is not None:
            self._created(folder, fd)
        return fd

    def renew(self, folder: str, fd: int) -> bool:
        """After a file was missing in ``fd``: True when ``folder`` is no longer the folder held
        (removed or replaced), which is then forgotten so the next ``get`` opens it again."""
        try:
            held, now = os.fstat(fd), os.lstat(folder)
        except OSError:  # gone, or the descriptor closed meanwhile
            same = False
        else:
            same = held.st_nlink > 0 and (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
        if not same:
            self._retire(folder, fd)
        return not same

    def _retire(self, folder: str, fd: int) -> None:
        with self._lock:
            if self._fds.get(folder) != fd:
                return  # another thread renewed it already
            del self._fds[folder]
            self._retired.append(fd)
            while len(self._retired) > _RETIRED_KEPT:
                with contextlib.suppress(OSError):
                    os.close(self._retired.pop(0))

    def forget_all(self) -> None:
        """Let every folder be opened again on next use (after folders were removed)."""
        with self._lock:
            self._retired.extend(self._fds.values())
            self._fds.clear()
            while len(self._retired) > _RETIRED_KEPT:
                with contextlib.suppress(OSError):
                    os.close(self._retired.pop(0))


def _close_all(fds: dict[str, int], retired: list[int]) -> None:
    for fd in [*fds.values(), *retired]:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()
    retired.clear()


def _open_chain(folder: str, create: bool, made: list[bool]) -> int | None:
    """Open ``{root}/{provider}/{model}``: the root as given (it may be a symlink: the user
    chose it), the provider and model folders below it without following a symlink (``made``
    gets an item when this call made the model folder)."""
    provider_path, model = folder.rsplit("/", 1)
    root, provider = provider_path.rsplit("/", 1)
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        if not create:
            return None  # (no cache there: nothing to read)
        try:
            os.makedirs(root, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(
                errno.ENOTDIR, "the cache directory is a file, not a directory", root
            ) from None
        root_fd = os.open(root, _DIR_FLAGS)
    try:
        provider_fd = open_subfolder(root_fd, provider, provider_path, create)
        if provider_fd is None:
            return None
        try:
            return open_subfolder(provider_fd, model, folder, create, made)
        finally:
            os.close(provider_fd)
    finally:
        os.close(root_fd)


def open_subfolder(
    parent: int, name: str, path: str, create: bool, made: list[bool] | None = None
) -> int | None:
    """The folder ``name`` in ``parent``, opened without following a symlink (made first with
    ``create``; ``made`` gets an item when this call made it); None when it is not there.
    ``EntryRefusedError`` for a symlink or a file in its place (``path`` names it)."""
    for _ in range(2):
        try:
            return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent)
                if made is not None:
                    made.append(True)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise EntryRefusedError(
                    f"{path} is a symlink or not a folder (Spark follows no symlink in a cache)"
                ) from None
            raise
    return None


class FolderListing:
    """``os.scandir`` of a model folder through a descriptor (not following a symlink), so that
    each item's ``stat`` looks up its name alone, not its whole path again: a tenth of a scan
    of a large cache. Items have their bare ``name`` as ``path``. ``FileNotFoundError`` or
    ``NotADirectoryError`` (also for a symlink) when there is no folder there."""

    def __init__(self, folder: str) -> None:
        try:
            self._fd = os.open(folder, _DIR_FLAGS | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotADirectoryError(
                    errno.ENOTDIR, "a symlink (not followed)", folder
                ) from None
            raise

    def __enter__(self) -> Iterator[os.DirEntry[str]]:
        try:
            self._items = os.scandir(self._fd)  # (its items' stat uses this descriptor)
        except BaseException:
            os.close(self._fd)
            raise
        return self._items

    def __exit__(self, *exc: object) -> None:
        self._items.close()
        os.close(self._fd)
