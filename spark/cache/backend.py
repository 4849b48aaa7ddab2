"""``EntryStore``: what the cache needs from a place to keep entry bytes.

Two levels (STYLE.md): this thin byte store keyed by strings, under the cache semantics of
``BoundCache``/``CacheManager``. ``DiskStore`` (one file per entry) is the embedded default;
the Redis store and the two-tier store implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from spark.cache.ledger import LedgerSink
    from spark.cache.memory import Signature
    from spark.cache.store import EntryFile

__all__ = ["EntryStore"]


class EntryStore(Protocol):
    """Bytes of entries by location; locations come from ``entry_path``."""

    #: Whether ``signature`` is cheap (a ``stat``, no network round trip). Only then may the
    #: in-process memory tier serve hits, validated by it.
    validates_cheaply: bool

    def describe(self) -> str:
        """Where the entries live (a directory, a Redis URL), for messages."""

    def entry_path(self, provider: str, model_id: str, key: str) -> str:
        """The location of one entry."""

    def read(self, path: str) -> tuple[bytes, Signature] | None:
        """The bytes at ``path`` and their signature; None when there is no entry."""

    def signature(self, path: str) -> Signature | None:
        """The current signature at ``path`` (None: gone)."""

    def write(self, path: str, data: bytes, expires_at: float | None = None) -> Signature:
        """Replace the entry at ``path`` atomically; ``expires_at`` lets a store expire it."""

    def touch(self, path: str, signature: Signature, now_ns: int) -> None:
        """Record a use (for least-recently-used eviction)."""

    def remove(self, path: str) -> bool:
        """Delete one entry; False when it was already gone."""

    def find(self, key: str) -> str | None:
        """The location of ``key`` whatever its provider and model, or None."""

    def walk(
        self, provider: str | None = None, model_dir: str | None = None
    ) -> Iterator[EntryFile]:
        """Every entry (optionally of one provider / model folder) with its size."""

    def cleanup_expired(self, now: float | None = None) -> int:
        """Delete expired entries (and the store's own debris); returns entries removed."""

    def evict(self, max_bytes: int) -> tuple[int, int]:
        """Enforce a size limit, least recently used first; returns (evicted, bytes left)."""

    def after_clear(self) -> None:
        """Tidy up after entries were deleted in bulk."""

    def ledger_sink(self) -> LedgerSink:
        """Where this store's hit/miss ledger lives."""
