"""A counts record's bytes and its file (``counts.py`` keeps the chain of changes it describes).

``{root}/.spark-counts/{provider}/{model folder}``: 52 bytes (magic, format, the folder's device,
inode and modification time, its entries and bytes, a CRC-32 of all that), opened below the
root without following a symlink, held open read-write and locked by ``flock`` and a lock of
this process's threads (docs/caching.md, "Statistics").
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import NamedTuple

from spark.cache.ledger.usage import ensure_bookkeeping_ignored
from spark.cache.stores.folders import open_subfolder

__all__ = [
    "COUNTS_DIR",
    "INVALID",
    "MAX_OPENED",
    "READ_SIZE",
    "SIZE",
    "SUB_FLAGS",
    "Handle",
    "Record",
    "close_all",
    "decode",
    "encode",
    "invalidate",
    "open_record",
    "provider_folder",
    "put",
]

logger = logging.getLogger("spark.cache")

COUNTS_DIR = ".spark-counts"
_MAGIC = b"SPKC"
_FORMAT = 1
_HEAD = struct.Struct("<4sIQQqQQ")  # magic, format, dev, ino, mtime_ns, entries, bytes
_CHECK = struct.Struct("<I")  # CRC-32 of the head: a torn or garbage record is no record
SIZE = _HEAD.size + _CHECK.size
INVALID = bytes(SIZE)
_SPOILED = b"\x01"  # written at offset SIZE
READ_SIZE = SIZE + 1  # (a longer file is spoiled)
MAX_OPENED = 4096  # a record file bigger than this when opened is not Spark's: never written
#: The longest a change waits for another's section (its process may be stopped or hung); for
#: ``_STUCK_S`` after such a wait, a change of that folder tries the lock once, without waiting.
_WAIT_S = 0.5
_STUCK_S = 5.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
SUB_FLAGS = _DIR_FLAGS | os.O_NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Record(NamedTuple):
    """A model folder's identity, its modification time after the last recorded change, and its
    entries and their bytes (``size``) then."""

    dev: int
    ino: int
    mtime_ns: int
    entries: int
    size: int

    def describes(self, st: os.stat_result) -> bool:
        """Whether the folder (its ``stat``) is the one recorded, unchanged since."""
        return self.mtime_ns == st.st_mtime_ns and self.ino == st.st_ino and self.dev == st.st_dev


def encode(record: Record) -> bytes:
    """The record's bytes (``struct.error`` for a figure out of range, e.g. negative)."""
    head = _HEAD.pack(_MAGIC, _FORMAT, *record)
    return head + zlib.crc32(head).to_bytes(4, "little")


def decode(data: bytes) -> Record | None:
    """The record in ``data``; None for anything else (torn, garbage, invalid, another format)."""
    if len(data) != SIZE:
        return None
    head = data[: _HEAD.size]
    if _CHECK.unpack_from(data, _HEAD.size)[0] != zlib.crc32(head):
        return None
    magic, version, *figures = _HEAD.unpack(head)
    if magic != _MAGIC or version != _FORMAT:
        return None
    return Record(*figures)


class Handle:
    """One record file held open read-write, and the lock of this process's threads (a
    ``flock`` belongs to the open file, which they all share)."""

    __slots__ = ("fd", "known", "lock", "stuck_until")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.stuck_until = 0.0
        self.known: tuple[bytes, Record] = (b"", Record(0, 0, 0, 0, 0))  # last written, decoded

    def take(self) -> bool:
        """Both locks, waiting at most ``_WAIT_S`` (not at all while the lock was found stuck);
        False when they were not had. ``OSError`` when ``flock`` fails."""
        if self.lock.acquire(blocking=False):  # (the common case: nobody in a section)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.stuck_until = 0.0
                return True
            except BlockingIOError:
                self.lock.release()
            except BaseException:
                self.lock.release()
                raise
        now = time.monotonic()
        wait = 0.0 if now < self.stuck_until else _WAIT_S
        if not (self.lock.acquire(timeout=wait) if wait else self.lock.acquire(blocking=False)):
            self.stuck_until = now + _STUCK_S
            return False
        delay = 2e-5
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.stuck_until = 0.0
                return True
            except BlockingIOError:
                if time.monotonic() - now >= wait:
                    self.lock.release()
                    self.stuck_until = now + _STUCK_S
                    return False
            except BaseException:
                self.lock.release()
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.005)

    def release(self) -> None:
        """Both locks."""
        try:  # noqa: SIM105 (on every change: a try costs less than ``suppress``)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass  # (closing the file would: it is never left locked)
        self.lock.release()

    def spoil(self) -> None:
        """Before a change made without the lock: a byte past the record's end, so that it is no
        record, whatever a section in flight writes (best effort)."""
        try:
            os.pwrite(self.fd, _SPOILED, SIZE)
        except OSError:
            invalidate(self.fd)


def put(fd: int, data: bytes) -> None:
    """Write the record in place, in one write."""
    if os.pwrite(fd, data, 0) != len(data):
        raise OSError("short write of a counts record")


def invalidate(fd: int) -> None:
    """Make the record absent, needing no space (best effort)."""
    try:
        os.ftruncate(fd, 0)
    except OSError as exc:
        logger.debug("cannot clear a counts record: %s", exc)


def open_record(root: str, folder: str, *, create: bool) -> int | None:
    """The record file of ``folder``, opened below ``root`` without following a symlink: to
    read, or with ``create`` to keep (its folders made); None when it (or a folder on the way)
    does not exist."""
    provider_fd = provider_folder(root, folder, create=create)
    if provider_fd is None:
        return None
    try:
        flags = _OPEN_FLAGS if create else _READ_FLAGS
        return os.open(folder.rsplit("/", 1)[1], flags, 0o644, dir_fd=provider_fd)
    except FileNotFoundError:
        return None
    finally:
        os.close(provider_fd)


def provider_folder(root: str, folder: str, *, create: bool) -> int | None:
    """``{root}/.spark-counts/{provider}`` of ``folder`` (``{root}/{provider}/{model}``)."""
    provider = folder.rsplit("/", 2)[1]
    counts = f"{root}/{COUNTS_DIR}"
    if create:
        ensure_bookkeeping_ignored(Path(root))  # (before the first ``.spark-*`` folder)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        counts_fd = open_subfolder(root_fd, COUNTS_DIR, counts, create)
        if counts_fd is None:
            return None
        try:
            return open_subfolder(counts_fd, provider, f"{counts}/{provider}", create)
        finally:
            os.close(counts_fd)
    finally:
        os.close(root_fd)


def close_all(handles: dict[str, Handle], dropped: list[Handle]) -> None:
    for handle in [*handles.values(), *dropped]:
        with contextlib.suppress(OSError):
            os.close(handle.fd)
    handles.clear()
    dropped.clear()
