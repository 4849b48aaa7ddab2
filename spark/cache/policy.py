"""Pure cache decisions: may we read, write or call, is an entry fresh, is an answer cacheable.

No I/O here: every rule is a function of a config, entry metadata and the time, so it is tested
without a disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spark.cache.codec import LAST_TIME, EntryMeta
from spark.cache.config import CacheConfig

__all__ = ["CachePolicy", "is_cacheable"]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The decisions of one ``CacheConfig``.

    ==========  =====  ======  ====================================================
    mode        reads  writes  on a miss
    ==========  =====  ======  ====================================================
    read_write  yes    yes     call the provider, store the answer
    read_only   yes    no      call the provider, store nothing
    replay      yes    no      raise ``CacheMissError``; never call the provider
    refresh     no     yes     (every call is a miss) call and overwrite
    disabled    no     no      call the provider
    ==========  =====  ======  ====================================================
    """

    enabled: bool
    mode: str
    ttl: float

    @classmethod
    def from_config(cls, config: CacheConfig) -> CachePolicy:
        """The policy of a config."""
        return cls(enabled=config.enabled, mode=config.mode, ttl=config.ttl)

    @property
    def reads(self) -> bool:
        """Whether lookups are made at all."""
        return self.enabled and self.mode != "refresh"

    @property
    def writes(self) -> bool:
        """Whether answers are stored."""
        return self.enabled and self.mode in ("read_write", "refresh")

    @property
    def replay(self) -> bool:
        """Whether a miss must fail instead of calling the provider."""
        return self.enabled and self.mode == "replay"

    def expires_at(self, now: float) -> float | None:
        """The ``expires_at`` a writer with this policy stamps on a new entry."""
        if self.ttl <= 0 or now + self.ttl >= LAST_TIME:
            return None  # (a TTL past the year 9999 is "never")
        return now + self.ttl

    def is_fresh(self, meta: EntryMeta, now: float) -> bool:
        """Usable by this reader: before the writer's ``expires_at`` and within our own TTL.

        Replay ignores age: a recorded answer is the fixture, and an expired one could only
        fail the run (replay never calls the provider to get a fresher one).
        """
        if self.mode == "replay":
            return True
        if meta.expires_at is not None and now >= meta.expires_at:
            return False
        return self.ttl <= 0 or now - meta.created_at < self.ttl


def is_cacheable(response: Mapping[str, Any]) -> bool:
    """An answer worth storing: some text, a tool call, a refusal, other output (an image a
    model made, code it ran) or an embedding. Empty answers are not."""
    return bool(
        response.get("text")
        or response.get("tool_calls")
        or response.get("refusal")
        or response.get("provider_output")
        or response.get("embeddings")
    )
