"""The ledger's values and the ``LedgerSink`` protocol: where batches of counts go (SQLite beside
a disk cache, or the Redis of a Redis cache)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LedgerRow", "LedgerSink", "RequestRow", "UsageRow", "read_figure", "report_damage"]

logger = logging.getLogger("spark.cache")
_DAMAGE_REPORTED: set[str] = set()

COUNT_LIMIT = 2**63
USD_LIMIT = 1e15  # more dollars than any cache will save or spend: a larger sum is damage


def read_figure(value: object, limit: float = USD_LIMIT) -> float | None:
    """A number read back from a ledger (SQLite's value, Redis's bytes) when it is finite and
    from 0 to ``limit``; None for anything else. A ledger shared with others, or damaged, can
    hold any value: it must never make ``get_stats()`` or a report fail or lie."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]  # (bytes and text too; else TypeError)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and 0 <= number <= limit else None


def report_damage(where: str, refused: int, reason: str = "") -> None:
    """One warning per ledger and process when figures read back were refused (read as 0)."""
    if refused and where not in _DAMAGE_REPORTED:
        _DAMAGE_REPORTED.add(where)
        logger.warning(
            "cache ledger %s: ignoring %d figures that are not finite numbers from 0 up "
            "(damaged, or written by something other than Spark)%s",
            where,
            refused,
            f": {reason}" if reason else "",
        )


@dataclass(frozen=True)
class RequestRow:
    """How often one stored request was served from the cache (for "top repeated requests")."""

    key: str
    provider: str
    model_id: str
    hits: int
    saved_usd: float
    last_hit: float | None

    @classmethod
    def read_back(
        cls, key: object, provider: object, model_id: object, figures: Sequence[object]
    ) -> tuple[RequestRow, int]:
        """The row read back (hits, saved, last hit), each figure ``read_figure`` refuses as 0
        (the last hit as unknown); and how many it refused."""
        hits, saved, last = figures
        read = [read_figure(hits, COUNT_LIMIT), read_figure(saved)]
        when = None if last is None else read_figure(last, 1e11)
        refused = read.count(None) + (last is not None and when is None)
        row = cls(str(key), str(provider), str(model_id), int(read[0] or 0), read[1] or 0.0, when)
        return row, refused


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

    @classmethod
    def read_back(
        cls, provider: object, model_id: object, figures: Sequence[object], day: object = ""
    ) -> tuple[LedgerRow, int]:
        """The row of figures read back (hits, misses, saved, spent, provider cache saved),
        each one that ``read_figure`` refuses as 0; and how many it refused."""
        limits = (COUNT_LIMIT, COUNT_LIMIT, USD_LIMIT, USD_LIMIT, USD_LIMIT)
        read = [read_figure(value, limit) for value, limit in zip(figures, limits, strict=True)]
        hits, misses, saved, spent, cache_saved = (value or 0 for value in read)
        row = cls(
            str(provider), str(model_id), int(hits), int(misses), saved, spent, str(day),
            cache_saved,
        )  # fmt: skip
        return row, read.count(None)

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
