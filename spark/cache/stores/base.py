"""``EntryStore``: what the cache needs from a place to keep entry bytes.

Two levels (STYLE.md): this thin byte store keyed by strings, under the cache semantics of
``BoundCache``/``CacheManager``. ``DiskStore`` (one file per entry) is the embedded default;
``RedisStore`` and the two-tier ``TieredStore`` implement the same protocol. A store reports
failure as ``OSError`` (a network store as ``StoreError``), which the cache treats as a miss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from spark.errors import CacheError

if TYPE_CHECKING:
    from spark.cache.ledger import LedgerSink

__all__ = [
    "MAX_ENTRY_BYTES",
    "USE_RESOLUTION_S",
    "EntryRef",
    "EntryRefusedError",
    "EntryStore",
    "StoreError",
    "StoreUnavailableError",
    "Unchecked",
    "Version",
    "remove_each",
]

#: What a store says of an entry's bytes so that a copy of them can be checked cheaply: it changes
#: whenever they do (a disk file's inode, modification time and size; a Redis value's size).
Version = tuple[int, int, int]

#: A use of an entry is recorded (for LRU eviction) at most this often: a read of an entry used
#: less than a minute ago leaves its access time alone (a system call off the hit path).
USE_RESOLUTION_S = 60.0

#: The largest entry a store reads or writes: bigger files are refused unread (bounded memory).
MAX_ENTRY_BYTES = 64 * 2**20


class StoreError(CacheError, OSError):
    """A store operation failed (e.g. Redis refused a command); the cache treats it as a miss
    (an ``OSError``), and an admin call raises it as what it also is, a ``CacheError``."""


class EntryRef(NamedTuple):
    """One entry found by ``walk``: its location, the provider, the model's slot (its id made
    safe for a location: ``quote_model_id``), the key, its size and when it was last used."""

    location: str
    provider: str
    model_slot: str
    key: str
    size: int
    used_ns: int


class EntryRefusedError(OSError):
    """What is at an entry's location is not an entry a store will read or write: a symlink
    (never followed), a FIFO, a device or a folder, or a file over ``MAX_ENTRY_BYTES``."""


class Unchecked(NamedTuple):
    """Bytes a store read from elsewhere than the location asked for (a local tier's remote)
    and has not kept there yet: ``origin`` names where they came from (for messages about
    them), and ``keep()`` copies them to the location once the reader has checked them,
    returning the copy's version (the bytes' own when no copy could be made)."""

    data: bytes
    version: Version
    origin: str
    keep: Callable[[], Version]


class StoreUnavailableError(StoreError):
    """The store cannot be reached (down, timed out, or skipped while its circuit is open).

    The store has already logged it, once per outage, so callers do not warn again.
    """


class EntryStore(Protocol):
    """Bytes of entries by location; locations come from ``location``."""

    #: Whether ``version`` is cheap (no network round trip). Only then may the
    #: in-process memory tier serve hits, validated by it.
    validates_cheaply: bool
    #: Whether ``evict`` enforces ``max_cache_size_mb`` (False: the server evicts on its own).
    evicts: bool

    def describe(self) -> str:
        """Where the entries live (a directory, a Redis URL), for messages."""

    def location(self, provider: str, model_id: str, key: str) -> str:
        """The location of one entry."""

    def read(
        self, location: str, *, touch: bool = True
    ) -> tuple[bytes, Version] | Unchecked | None:
        """The bytes at ``location`` and their version (``Unchecked`` when they came from
        elsewhere, to be kept at ``location`` only once checked); None when there is no entry.
        With ``touch`` a read counts as a use for least-recently-used eviction (scans pass
        False). Raises ``EntryRefusedError`` for what is not an entry, ``OSError`` when it
        fails."""

    def version(self, location: str) -> Version | None:
        """The current version at ``location`` (None: gone)."""

    def write(self, location: str, data: bytes, expires_at: float | None = None) -> Version:
        """Replace the entry at ``location`` atomically; ``expires_at`` lets a store expire it."""

    def touch(self, location: str, version: Version, now_ns: int) -> None:
        """Record a use (for least-recently-used eviction)."""

    def remove(self, location: str) -> bool:
        """Delete one entry; False when it was already gone."""

    def remove_all(self, locations: list[str]) -> int:
        """Delete entries; how many were removed (not already gone). A directory removes those
        of one model folder in a row together (``remove_each`` sends them in batches)."""

    def find(self, key: str) -> str | None:
        """The location of ``key`` whatever its provider and model, or None."""

    def walk(
        self, provider: str | None = None, model_slot: str | None = None
    ) -> Iterator[EntryRef]:
        """Every entry (optionally of one provider / model folder) with its size."""

    def cleanup_expired(self, now: float | None = None) -> int:
        """Delete expired entries (and the store's own debris); returns entries removed."""

    def evict(self, max_bytes: int) -> tuple[int, int]:
        """Enforce a size limit, least recently used first; returns (evicted, bytes used)."""

    def after_clear(self, provider: str | None = None, model_slot: str | None = None) -> None:
        """Tidy up after the entries of a provider / model folder (None: all) were deleted."""

    def ledger_sink(self) -> LedgerSink:
        """Where this store's hit/miss ledger lives."""

    def try_lock(self, key: str) -> str | None:
        """Claim the provider call of ``key`` across processes and machines.

        A token to pass to ``unlock`` when this process may call (``""``: the store needs no
        lock), None while another process holds the claim.
        """

    def renew_lock(self, key: str, token: str) -> bool:
        """Extend a claim of ``try_lock`` by its full duration while the provider call runs;
        False when it is no longer ours (it expired and another process took it)."""

    def unlock(self, key: str, token: str) -> None:
        """Give up a claim of ``try_lock`` (only if it is still ours)."""

    def rebuild_index(self, repair: bool = False) -> tuple[int, int]:
        """Check the store's listing index against the entries themselves: (entries missing
        from it, members whose entry is gone), fixed when ``repair``. A directory is its own
        index: (0, 0)."""


def remove_each(store: EntryStore, locations: Iterable[str], batch: int = 256) -> int:
    """Delete the entries at ``locations``, ``batch`` at a time; how many were removed."""
    removed = 0
    chunk: list[str] = []
    for location in locations:
        chunk.append(location)
        if len(chunk) == batch:
            removed += store.remove_all(chunk)
            chunk = []
    return removed + (store.remove_all(chunk) if chunk else 0)
