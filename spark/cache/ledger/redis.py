"""The ledger of a Redis cache: hits, misses and dollars in Redis, added to by every process.

Layout under the cache's prefix ``P``::

    P ledger:days            set of the days that have figures ("2025-01-31")
    P ledger:day:{day}       hash "{counter}\\t{provider}\\t{model_id}" -> number, counter one of
                             hits, misses (HINCRBY), saved, spent, cache_saved (HINCRBYFLOAT,
                             USD; cache_saved: what the provider's prompt cache took off the
                             paid calls; absent from older ledgers: 0)
    P ledger:req:hits        sorted set key -> times served from the cache (ZINCRBY)
    P ledger:req:saved       sorted set key -> USD those hits saved
    P ledger:req:info        hash key -> "{provider}\\t{model_id}\\t{last hit epoch}"

On a Redis Cluster ``P ledger:`` is ``P {ledger}:``: one hash tag, so that every key of the
ledger shares a slot. A batch is one MULTI, so a batch is counted whole or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from spark.cache.ledger.base import LedgerRow, RequestRow, UsageRow
from spark.cache.stores.redis import text

if TYPE_CHECKING:
    from spark.cache.stores.redis import RedisStore

__all__ = ["RedisLedger"]

_COUNTERS = ("hits", "misses", "saved", "spent", "cache_saved")


class RedisLedger:
    """A ``LedgerSink`` in the Redis of a ``RedisStore`` (same client, prefix and breaker)."""

    def __init__(self, store: RedisStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def describe(self) -> str:
        """The Redis and the key prefix of the figures."""
        return f"{self.store.url} prefix {self.prefix!r}"

    def exists(self) -> bool:
        """Whether any figures were recorded."""
        return bool(self.store.run(lambda: self.store.client.exists(self.prefix + "days")))

    def add(self, rows: list[UsageRow], request_rows: list[RequestRow]) -> None:
        """Add one batch in one MULTI (raises ``StoreError`` on failure)."""
        self.store.execute(partial(self._queue, rows, request_rows), transaction=True)

    def _queue(self, rows: list[UsageRow], request_rows: list[RequestRow], pipe: Any) -> None:
        for day, provider, model_id, *counts in rows:
            table, field = f"{self.prefix}day:{day}", f"{provider}\t{model_id}"
            pipe.sadd(self.prefix + "days", day)
            for name, value in zip(_COUNTERS, counts, strict=True):
                if value and name in ("hits", "misses"):
                    pipe.hincrby(table, f"{name}\t{field}", int(value))
                elif value:
                    pipe.hincrbyfloat(table, f"{name}\t{field}", float(value))
        for row in request_rows:
            pipe.zincrby(self.prefix + "req:hits", row.hits, row.key)
            if row.saved_usd:
                pipe.zincrby(self.prefix + "req:saved", row.saved_usd, row.key)
            info = f"{row.provider}\t{row.model_id}\t{row.last_hit or ''}"
            pipe.hset(self.prefix + "req:info", row.key, info)

    def rows(self, by_day: bool = False) -> list[LedgerRow]:
        """Figures per provider and model (and per day), ordered as the SQLite ledger's."""
        members = self.store.run(lambda: self.store.client.smembers(self.prefix + "days"))
        days = sorted(text(day) for day in members)
        tables: list[dict[bytes, bytes]] = self.store.execute(
            lambda pipe: [pipe.hgetall(f"{self.prefix}day:{day}") for day in days],
            transaction=False,
        )
        sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
        for day, table in zip(days, tables, strict=True):
            for raw_field, raw_value in table.items():
                name, provider, model_id = raw_field.decode().split("\t", 2)
                if name not in _COUNTERS:
                    continue  # a counter of a newer Spark
                slot = sums[(day if by_day else "", provider, model_id)]
                slot[_COUNTERS.index(name)] += float(raw_value)
        return [
            LedgerRow(provider, model_id, int(s[0]), int(s[1]), s[2], s[3], day, s[4])
            for (day, provider, model_id), s in sorted(sums.items())
        ]

    def top_requests(self, limit: int = 20) -> list[RequestRow]:
        """The requests served from the cache most often, most hits first."""
        ranked = cast(
            "list[tuple[bytes, float]]",
            self.store.run(
                lambda: self.store.client.zrevrange(
                    self.prefix + "req:hits", 0, limit - 1, withscores=True
                )
            ),
        )
        if not ranked:
            return []
        keys = [text(key) for key, _ in ranked]
        saved, infos = self.store.execute(
            lambda pipe: (
                pipe.zmscore(self.prefix + "req:saved", keys),
                pipe.hmget(self.prefix + "req:info", keys),
            ),
            transaction=False,
        )
        rows = [
            _request_row(key, hits, money, info)
            for key, (_, hits), money, info in zip(keys, ranked, saved, infos, strict=True)
        ]
        return sorted(rows, key=lambda row: (-row.hits, row.key))


def _request_row(key: str, hits: float, saved: float | None, info: Any) -> RequestRow:
    provider, rest = (info.decode() if info else "\t\t").split("\t", 1)
    model_id, last = rest.rsplit("\t", 1)  # a model id may hold anything, even a tab
    return RequestRow(
        key, provider, model_id, int(hits), saved or 0.0, float(last) if last else None
    )
