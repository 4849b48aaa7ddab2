"""This process's hits, misses and dollars for one cache (``CacheManager.counters``); each
count goes to the cache's ledger too, which adds up every process (docs/costs.md, "The three
sums")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spark.cache.ledger import Ledger
from spark.cache.shape import valid_amount

if TYPE_CHECKING:
    from spark.cache.bound import CacheRequest

__all__ = ["CacheStatsCounters"]


@dataclass
class CacheStatsCounters:
    """This process's hits, misses and dollars for one directory; the ledger gets them too."""

    ledger: Ledger
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    bypasses: int = 0  # calls made past the cache (cache_mode="off", provider-held state)
    saved_cost_usd: float = 0.0
    spent_cost_usd: float = 0.0
    provider_cache_saved_usd: float = 0.0  # what providers' prompt caches took off the misses

    def record_hit(self, request: CacheRequest, response: Mapping[str, Any]) -> None:
        """Count a hit, which saved the recorded cost of the call it replaced."""
        self.hits += 1
        cost = valid_amount(response.get("cost_usd"))
        if cost:
            self.saved_cost_usd += cost
        self.ledger.record(request.provider, request.model_id, hit=True, cost=cost, key=request.key)

    def record_bypass(self) -> None:
        """Count a call made past the cache (it neither reads nor writes an entry)."""
        self.bypasses += 1

    def record_paid_past_cache(
        self, provider: str, model_id: str, cost: float | None, cache_saved: float | None
    ) -> None:
        """What a call made past the cache cost: spent (and the provider's prompt cache took
        off it), though it is a bypass, not a miss."""
        cost, cache_saved = valid_amount(cost), valid_amount(cache_saved)
        self.spent_cost_usd += cost or 0.0
        self.provider_cache_saved_usd += cache_saved or 0.0
        self.ledger.record(
            provider, model_id, hit=False, cost=cost, provider_cache_saved=cache_saved, lookup=False
        )

    def record_miss(self, request: CacheRequest, response: Mapping[str, Any] | None) -> None:
        """Count a miss, and what the provider call it needed cost (when known)."""
        self.misses += 1
        cost = valid_amount(response.get("cost_usd")) if response is not None else None
        if cost:
            self.spent_cost_usd += cost
        raw = response.get("provider_cache_saved_usd") if response is not None else None
        cache_saved = valid_amount(raw)
        if cache_saved:
            self.provider_cache_saved_usd += cache_saved
        self.ledger.record(
            request.provider,
            request.model_id,
            hit=False,
            cost=cost,
            provider_cache_saved=cache_saved,
        )
