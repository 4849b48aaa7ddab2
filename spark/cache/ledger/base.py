"""The ledger's values and the ``LedgerSink`` protocol: where batches of counts go (SQLite beside
a disk cache, or the Redis of a Redis cache)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["LedgerRow", "LedgerSink", "RequestRow", "UsageRow"]


@dataclass(frozen=True)
class RequestRow:
    """How often one stored request was served from the cache (for "top repeated requests")."""

    key: str
    provider: str
    model_id: str
    hits: int
    saved_usd: float
    last_hit: float | None


@dataclass(frozen=True)
class LedgerRow:
    """All-time figures of one provider's model in one cache directory (``day`` "" = all).

    Three sums of dollars, kept apart: ``spent_usd`` what the misses paid, ``saved_usd`` what
    the hits saved (the recorded cost of the calls they replaced), and
    ``provider_cache_saved_usd`` what the provider's prompt caching took off the paid calls.
    """

    provider: str
    model_id: str
    hits: int
    misses: int
    saved_usd: float
    spent_usd: float
    day: str = ""
    provider_cache_saved_usd: float = 0.0

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, 0 when there were none."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class LedgerSink(Protocol):
    """Where a ledger's batches go: SQLite beside a disk cache, or the Redis of a Redis cache."""

    def describe(self) -> str:
        """Where the figures live, for messages."""

    def exists(self) -> bool:
        """Whether any figures were ever recorded there."""

    def add(self, rows: list[UsageRow], request_rows: list[RequestRow]) -> None:
        """Add one batch (raises on failure)."""

    def rows(self, by_day: bool = False) -> list[LedgerRow]:
        """Figures per provider and model (and per day with ``by_day``)."""

    def top_requests(self, limit: int = 20) -> list[RequestRow]:
        """The requests served from the cache most often."""


# (day, provider, model_id, hits, misses, saved_usd, spent_usd, provider_cache_saved_usd)
UsageRow = tuple[str, str, str, int, int, float, float, float]
