"""The disk store: moves entry bytes to and from ``{root}/{provider}/{model}/{key}.json``.

It knows paths, atomic writes and directory walks, nothing about what an entry means. The model
directory is the model id made path-safe by a reversible percent-encoding (``quote_model_id``), so
no id can escape the root and two ids never share a folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spark.cache.memory import Signature
from spark.errors import ConfigError

if TYPE_CHECKING:
    from spark.cache.ledger import LedgerSink

__all__ = ["DiskStore", "EntryFile", "quote_model_id", "unquote_model_id"]

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_PROVIDER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_DIR_NAME = 160
TEMP_SUFFIX = ".tmp"


def quote_model_id(model_id: str) -> str:
    """A directory name for ``model_id``: ``[A-Za-z0-9._-]`` kept, every other byte ``%XX``.

    A leading dot is encoded too (no ``.``/``..``/hidden names). An id whose encoding is longer
    than 160 characters keeps a readable prefix and ends in ``+`` and a hash of the full id (``+``
    never appears otherwise), so it stays unique; the full id is in every entry's metadata.
    """
    if not model_id:
        raise ConfigError("model_id must not be empty")
    parts = [ch if ch in _SAFE else _percent(ch) for ch in model_id]
    if parts[0] == ".":
        parts[0] = "%2E"
    quoted = "".join(parts)
    if len(quoted) > _MAX_DIR_NAME:
        digest = hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:32]
        quoted = quoted[:96].rstrip("%0123456789ABCDEF") + "+" + digest
    return quoted


def unquote_model_id(name: str) -> str | None:
    """The model id of a directory name, or None for a hashed (long) name."""
    if "+" in name:
        return None
    data = bytearray()
    index = 0
    while index < len(name):
        if name[index] == "%":
            data.append(int(name[index + 1 : index + 3], 16))
            index += 3
        else:
            data.extend(name[index].encode("ascii"))
            index += 1
    return data.decode("utf-8")


def _percent(ch: str) -> str:
    return "".join(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))


def check_provider(provider: str) -> str:
    """``provider`` if it is a safe lower-case name, else a ``ConfigError``."""
    if not _PROVIDER_RE.match(provider):
        raise ConfigError(f"provider must be a lower-case name like 'openai', got {provider!r}")
    return provider


@dataclass(frozen=True, slots=True)
class EntryFile:
    """One entry file found by a walk."""

    path: str
    provider: str
    model_dir: str
    key: str
    size: int
    atime_ns: int


class DiskStore:
    """Byte storage under ``root``: atomic writes (temp file + rename), reads that never write."""

    validates_cheaply = True  # a signature is one stat()
    evicts = True  # max_cache_size_mb is ours to enforce

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dirs: dict[tuple[str, str], str] = {}

    def describe(self) -> str:
        """The directory."""
        return str(self.root)

    def entry_path(self, provider: str, model_id: str, key: str) -> str:
        """The file of an entry (the directory part is memoized: this is on the hit path)."""
        folder = self._dirs.get((provider, model_id))
        if folder is None:
            folder = os.path.join(self.root, check_provider(provider), quote_model_id(model_id))
            self._dirs[(provider, model_id)] = folder
        return f"{folder}/{key}.json"

    def path_in(self, provider: str, model_dir: str, key: str) -> str:
        """The file of an entry given its (already path-safe) model folder name."""
        return f"{self.root}/{provider}/{model_dir}/{key}.json"

    def read(self, path: str) -> tuple[bytes, Signature] | None:
        """The bytes of a file and their signature, or None when it does not exist.

        A read is a use for LRU eviction: it sets the file's access time (through the open
        descriptor, keeping the modification time); the bytes are never rewritten.
        """
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:  # os-level calls: a third of the cost of open() + BufferedReader on the hit path
            st = os.fstat(fd)
            data = os.read(fd, st.st_size)
            while len(data) < st.st_size:  # a short read; entries are never written in place
                more = os.read(fd, st.st_size - len(data))
                if not more:
                    break
                data += more
            with contextlib.suppress(OSError):  # a read-only checkout (CI replay) keeps its atime
                os.utime(fd, ns=(time.time_ns(), st.st_mtime_ns))
        finally:
            os.close(fd)
        return data, (st.st_ino, st.st_mtime_ns, st.st_size)

    def write(self, path: str, data: bytes, expires_at: float | None = None) -> Signature:
        """Write atomically: a private temp file in the same directory, then ``os.replace``.

        ``expires_at`` is in the entry's own metadata; files do not expire by themselves.

        A crash leaves at most a ``.{key}.{pid}.*.tmp`` file, removed by ``remove_stray_temps``.
        Raises ``OSError`` (unwritable, disk full); the temp file is removed first.
        """
        folder, name = path.rsplit("/", 1)
        temp = f"{folder}/.{name[:-5]}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                st = os.fstat(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            _unlink(temp)
            raise
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def signature(self, path: str) -> Signature | None:
        """The current signature of a file, or None when it is gone."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def touch(self, path: str, signature: Signature, now_ns: int) -> None:
        """Record a use for LRU eviction: set atime, keep mtime (the entry is not rewritten)."""
        with contextlib.suppress(OSError):  # a read-only checkout (CI replay) keeps its atime
            os.utime(path, ns=(now_ns, signature[1]))

    def remove(self, path: str) -> bool:
        """Delete one file; False when it was already gone."""
        return _unlink(path)

    def find(self, key: str) -> str | None:
        """The path of ``key`` in any provider/model folder, or None."""
        if not _KEY_RE.match(key):
            return None
        for provider_dir in _subdirs(str(self.root)):
            for model_dir in _subdirs(provider_dir):
                candidate = f"{model_dir}/{key}.json"
                if os.path.exists(candidate):
                    return candidate
        return None

    def walk(
        self, provider: str | None = None, model_dir: str | None = None
    ) -> Iterator[EntryFile]:
        """Every entry file (optionally of one provider / model folder), with size and atime."""
        for provider_path in _subdirs(str(self.root)):
            provider_name = os.path.basename(provider_path)
            if provider is not None and provider_name != provider:
                continue
            for model_path in _subdirs(provider_path):
                model_name = os.path.basename(model_path)
                if model_dir is not None and model_name != model_dir:
                    continue
                yield from _entries_in(model_path, provider_name, model_name)

    def temp_files(self) -> Iterator[str]:
        """Paths of temp files left in model folders (by running or crashed writers)."""
        for provider_path in _subdirs(str(self.root)):
            for model_path in _subdirs(provider_path):
                with os.scandir(model_path) as found:
                    for item in found:
                        if item.name.startswith(".") and item.name.endswith(TEMP_SUFFIX):
                            yield item.path

    # Whole-directory work lives in maintenance.py (imported here lazily: it imports this module).

    def cleanup_expired(self, now: float | None = None) -> int:
        """Delete expired entries and the temp files of crashed writers."""
        from spark.cache.stores import maintenance

        maintenance.remove_stray_temps(self, now)
        return maintenance.cleanup_expired(self, now)

    def evict(self, max_bytes: int) -> tuple[int, int]:
        """Delete least recently used entries (oldest atime) while over ``max_bytes``."""
        from spark.cache.stores import maintenance

        return maintenance.evict_lru(self, max_bytes)

    def after_clear(self, provider: str | None = None, model_dir: str | None = None) -> None:
        """Remove the folders a bulk delete emptied."""
        self.prune_empty_dirs()

    def ledger_sink(self) -> LedgerSink:
        """The SQLite ledger beside the entries."""
        from spark.cache.ledger import SQLiteLedger

        return SQLiteLedger(self.root)

    def try_lock(self, key: str) -> str | None:
        """No cross-process claim: concurrent writers of one key each write a whole file."""
        return ""

    def unlock(self, key: str, token: str) -> None:
        """Nothing to release."""

    def prune_empty_dirs(self) -> None:
        """Remove empty provider/model folders (a concurrent writer re-creates them)."""
        for provider_path in _subdirs(str(self.root)):
            for model_path in _subdirs(provider_path):
                _rmdir(model_path)
            _rmdir(provider_path)
        self._dirs.clear()


def _entries_in(folder: str, provider: str, model_dir: str) -> Iterator[EntryFile]:
    try:
        found = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    with found:
        for item in found:
            name = item.name
            if name.startswith(".") or not name.endswith(".json"):
                continue
            try:
                st = item.stat()
            except FileNotFoundError:
                continue
            yield EntryFile(item.path, provider, model_dir, name[:-5], st.st_size, st.st_atime_ns)


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as found:
            return [i.path for i in found if i.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _rmdir(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)
