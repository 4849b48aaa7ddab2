"""Two tiers: a local disk store in front of a shared (Redis) store, filled on remote hits.

Reads try the local tier first; a local miss reads the remote and keeps a copy locally once the
reader has checked the bytes (``Unchecked``: what the reader refuses is never copied, and is
named by where it came from, the remote's location). Writes
and removals go to both. ``walk``, statistics, the ledger and the cross-process lock are the
remote's (the shared cache); the size limit bounds the local copy.

Locations come in two forms. ``location`` gives the local file (the hit path): ``version``
is then a ``stat``, so the in-process memory tier keeps working, and a read fills the local
tier. ``walk`` gives the remote's ``{provider}/{model_slot}/{key}`` (listings, verification, key
rotation): reading one reads the shared entry without making a local copy, and rewriting one
updates a local copy only where there is one.

The trade-off: another machine that clears or rewrites an entry in Redis does not reach this
machine's local copy, which is served until it expires (its ``expires_at``) or is cleared here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from spark.cache.codec import decode_envelope
from spark.cache.stores.base import (
    EntryRef,
    EntryStore,
    StoreUnavailableError,
    Unchecked,
    Version,
)
from spark.cache.stores.disk import DiskStore
from spark.cache.stores.names import is_entry_location

if TYPE_CHECKING:
    from spark.cache.ledger import LedgerSink

__all__ = ["TieredStore"]

logger = logging.getLogger("spark.cache")


class TieredStore:
    """A ``DiskStore`` (``local``) in front of a remote ``EntryStore`` (``remote``) whose
    locations are ``{provider}/{model_slot}/{key}`` (as ``RedisStore``'s)."""

    validates_cheaply = True  # versions are the local files'
    evicts = True  # max_cache_size_mb bounds the local copy; the remote evicts by itself

    def __init__(self, local: DiskStore, remote: EntryStore) -> None:
        self.local = local
        self.remote = remote
        self._root = f"{local.root}/"

    def describe(self) -> str:
        """The remote, and the local tier's directory."""
        return f"{self.remote.describe()} (local tier {self.local.describe()})"

    def _where(self, path: str) -> tuple[str, str, bool]:
        """(local file, remote location, whether ``path`` was the local file). A remote location
        that is no ``{provider}/{model_slot}/{key}`` (a hostile index member) has no local file:
        ""."""
        if path.startswith(self._root):
            return path, path[len(self._root) : -5], True
        parts = path.split("/")
        local = self.local.path_in(*parts) if len(parts) == 3 and is_entry_location(*parts) else ""
        return local, path, False

    # -- one entry ------------------------------------------------------------------------

    def location(self, provider: str, model_id: str, key: str) -> str:
        """The local tier's file of the entry."""
        return self.local.location(provider, model_id, key)

    def read(self, path: str, *, touch: bool = True) -> tuple[bytes, Version] | Unchecked | None:
        """The local copy; else (or when it has expired) the remote's, ``Unchecked``: the
        reader copies it to the local tier once it has checked it (``keep``).

        An expired copy is not the last word: another machine may have stored a fresh answer.
        A remote location reads the remote only.
        """
        local, remote_path, is_local = self._where(path)
        if not is_local:
            return self.remote.read(remote_path, touch=touch)
        found = self.local.read(local, touch=touch)
        if found is not None and not _expired(found[0]):
            return found
        remote = self.remote.read(remote_path)
        if remote is None:
            return found
        data, version = remote[0], remote[1]
        origin = f"{remote_path} in {self.remote.describe()}"
        return Unchecked(data, version, origin, partial(self._keep, local, data, version))

    def _keep(self, local: str, data: bytes, version: Version) -> Version:
        """Copy checked remote bytes to the local tier; the copy's version (the remote's when
        none could be made: the answer is good without it)."""
        try:
            return self.local.write(local, data)
        except OSError as exc:
            logger.debug("cannot keep a local copy of %s: %s", local, exc)
            return version

    def version(self, path: str) -> Version | None:
        """The local file's version."""
        return self.local.version(self._where(path)[0])

    def write(self, path: str, data: bytes, expires_at: float | None = None) -> Version:
        """Write both tiers (a remote location: the local copy only where there is one); an
        unreachable remote (already reported) leaves the local copy."""
        local, remote_path, is_local = self._where(path)
        version = (0, 0, len(data))
        if is_local or os.path.lexists(local):
            version = self.local.write(local, data, expires_at)
        with contextlib.suppress(StoreUnavailableError):
            self.remote.write(remote_path, data, expires_at)
        return version

    def touch(self, path: str, version: Version, now_ns: int) -> None:
        """Record a use of the local copy (for its LRU eviction)."""
        self.local.touch(self._where(path)[0], version, now_ns)

    def remove(self, path: str) -> bool:
        """Delete from both tiers; True when either held it."""
        local, remote_path, _ = self._where(path)
        removed = bool(local) and self.local.remove(local)
        return self.remote.remove(remote_path) or removed

    def remove_all(self, locations: list[str]) -> int:
        """Delete from both tiers; how many either held."""
        return sum(self.remove(location) for location in locations)

    def find(self, key: str) -> str | None:
        """The local file of ``key``'s entry when the remote or the local tier has it (the remote
        location when it names no local file)."""
        found = self.remote.find(key)
        if found is None:
            return self.local.find(key)
        local, remote, _ = self._where(found)
        return local or remote  # (a hostile index member: the remote location itself)

    # -- every entry ----------------------------------------------------------------------

    def walk(
        self, provider: str | None = None, model_slot: str | None = None
    ) -> Iterator[EntryRef]:
        """The remote's entries (the shared cache), at their remote locations."""
        return self.remote.walk(provider, model_slot)

    def cleanup_expired(self, now: float | None = None) -> int:
        """Clean both tiers; returns the remote's count (the local copies are copies)."""
        self.local.cleanup_expired(now)
        return self.remote.cleanup_expired(now)

    def evict(self, max_bytes: int) -> tuple[int, int]:
        """Bound the local copy, least recently used first."""
        return self.local.evict(max_bytes)

    def after_clear(self, provider: str | None = None, model_slot: str | None = None) -> None:
        """Also delete local copies the remote no longer lists (e.g. written while it was down)."""
        for entry in self.local.walk(provider, model_slot):
            self.local.remove(entry.location)
        self.local.after_clear()
        self.remote.after_clear(provider, model_slot)

    def ledger_sink(self) -> LedgerSink:
        """The remote's ledger."""
        return self.remote.ledger_sink()

    def try_lock(self, key: str) -> str | None:
        """The remote's claim."""
        return self.remote.try_lock(key)

    def renew_lock(self, key: str, token: str) -> bool:
        """Renew the remote's claim."""
        return self.remote.renew_lock(key, token)

    def unlock(self, key: str, token: str) -> None:
        """Release the remote's claim."""
        self.remote.unlock(key, token)

    def rebuild_index(self, repair: bool = False) -> tuple[int, int]:
        """The remote's index (the local copies are files: their own index)."""
        return self.remote.rebuild_index(repair)


def _expired(data: bytes) -> bool:
    """Whether an entry's ``expires_at`` has passed; unreadable: False."""
    try:
        return decode_envelope(data).meta.is_expired(time.time())
    except Exception:  # the reader reports a damaged entry, with its reason
        return False
