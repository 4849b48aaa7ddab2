"""What agents spend and save: ``CostStats`` values and the counters that add them up.

A cache miss spends the provider call's cost and bills its tokens; a hit spends nothing and
saves the cost recorded when the answer was first bought. Each agent keeps its own
``CostTracker``; one process-wide tracker adds up every agent (``total_cost_stats``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from spark.types import ModelResponse

__all__ = ["CostStats", "CostTracker", "reset_total_cost_stats", "total_cost_stats"]


@dataclass(frozen=True)
class CostStats:
    """Model calls of one agent (or run, or all agents) and what they cost, in USD.

    ``total_cost`` is what was actually spent: only cache misses cost money. ``saved_cost`` is
    the recorded cost of the calls that cache hits replaced. ``input_tokens`` and
    ``output_tokens`` are the tokens the provider billed (misses only, like ``total_cost``).
    ``calls`` counts every model call, hits included; ``unpriced_calls`` counts misses whose
    model has no known price (they add 0 to ``total_cost``, so it is a lower bound then).
    ``provider_cache_saved_cost`` is what the provider's own prompt caching took off the misses
    (already out of ``total_cost``; not part of ``saved_cost``, which is Spark's hits), and
    ``cache_read_tokens`` the input tokens it served (docs/costs.md).
    """

    total_cost: float = 0.0
    saved_cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    cache_hits: int = 0
    unpriced_calls: int = 0
    provider_cache_saved_cost: float = 0.0
    cache_read_tokens: int = 0

    @property
    def cache_misses(self) -> int:
        """Calls that went to the provider."""
        return self.calls - self.cache_hits

    @property
    def hit_rate(self) -> float:
        """Cache hits over calls (0 when there were none)."""
        return self.cache_hits / self.calls if self.calls else 0.0

    @property
    def total_tokens(self) -> int:
        """Billed input plus output tokens."""
        return self.input_tokens + self.output_tokens

    # -- compatibility names (the original framework's spellings; docs/models.md) ---------

    @property
    def total_calls(self) -> int:
        """``calls``, by the original framework's name."""
        return self.calls

    @property
    def total_input_tokens(self) -> int:
        """``input_tokens``, by the original framework's name."""
        return self.input_tokens

    @property
    def total_output_tokens(self) -> int:
        """``output_tokens``, by the original framework's name."""
        return self.output_tokens

    def __add__(self, other: CostStats) -> CostStats:
        if not isinstance(other, CostStats):
            return NotImplemented
        return CostStats(
            total_cost=self.total_cost + other.total_cost,
            saved_cost=self.saved_cost + other.saved_cost,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            calls=self.calls + other.calls,
            cache_hits=self.cache_hits + other.cache_hits,
            unpriced_calls=self.unpriced_calls + other.unpriced_calls,
            provider_cache_saved_cost=self.provider_cache_saved_cost
            + other.provider_cache_saved_cost,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
        )

    @classmethod
    def of_response(cls, response: ModelResponse) -> CostStats:
        """The figures of one model call."""
        cost = response.cost_usd or 0.0
        if response.cached:
            return cls(saved_cost=cost, calls=1, cache_hits=1)
        return cls(
            total_cost=cost,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            calls=1,
            unpriced_calls=int(response.cost_usd is None),
            provider_cache_saved_cost=response.provider_cache_saved_usd or 0.0,
            cache_read_tokens=response.usage.cache_read_tokens,
        )


class CostTracker:
    """A thread-safe running sum of ``CostStats`` (agents may run in several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = CostStats()

    def add(self, stats: CostStats) -> None:
        """Add the figures of one or more calls."""
        with self._lock:
            self._stats = self._stats + stats

    def snapshot(self) -> CostStats:
        """The sum so far."""
        with self._lock:
            return self._stats

    def reset(self) -> None:
        """Start again from zero."""
        with self._lock:
            self._stats = CostStats()


# Every agent of this process adds its calls here as well as to its own tracker.
TOTAL = CostTracker()


def total_cost_stats() -> CostStats:
    """The figures of every agent of this process since start (or the last reset)."""
    return TOTAL.snapshot()


def reset_total_cost_stats() -> None:
    """Zero the process-wide figures (for tests, or per job in a long-lived worker)."""
    TOTAL.reset()
