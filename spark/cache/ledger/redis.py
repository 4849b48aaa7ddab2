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

import contextlib
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from spark.cache.ledger.base import (
    COUNT_LIMIT,
    USD_LIMIT,
    LedgerRow,
    RequestRow,
    UsageRow,
    read_figure,
    report_damage,
)
from spark.cache.stores.base import StoreError, StoreUnavailableError
from spark.cache.stores.redis import text

if TYPE_CHECKING:
    from spark.cache.stores.redis import RedisStore

__all__ = ["RedisLedger"]

_COUNTERS = ("hits", "misses", "saved", "spent", "cache_saved")
T = TypeVar("T")


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
        """Figures per provider and model (and per day), ordered as the SQLite ledger's. A key
        of the wrong type (not Spark's) is skipped with one warning, as damaged figures are."""
        members = self._readable(
            lambda: self.store.run(lambda: self.store.client.smembers(self.prefix + "days"))
        )
        days, refused = _texts(members or ())
        days.sort()
        tables: list[Any] = self.store.execute(
            lambda pipe: [pipe.hgetall(f"{self.prefix}day:{day}") for day in days],
            transaction=False,
            errors_as_replies=True,
        )
        sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
        refused += sum(isinstance(table, Exception) for table in tables)
        for day, table in zip(days, tables, strict=True):
            if isinstance(table, Exception):
                continue
            for raw_field, raw_value in table.items():
                parts = _field_parts(raw_field)
                if parts is not None and parts[0] not in _COUNTERS:
                    continue  # a counter of a newer Spark
                index = _COUNTERS.index(parts[0]) if parts is not None else 0
                value = read_figure(raw_value, COUNT_LIMIT if index < 2 else USD_LIMIT)
                if parts is None or value is None:
                    refused += 1
                    continue
                sums[(day if by_day else "", parts[1], parts[2])][index] += value
        report_damage(self.describe(), refused)
        return [
            LedgerRow(provider, model_id, int(s[0]), int(s[1]), s[2], s[3], day, s[4])
            for (day, provider, model_id), s in sorted(sums.items())
        ]

    def top_requests(self, limit: int = 20) -> list[RequestRow]:
        """The requests served from the cache most often, most hits first (none when a key of
        the ranking is of the wrong type: one warning)."""
        return self._readable(partial(self._top_requests, limit)) or []

    def _readable(self, read: Callable[[], T]) -> T | None:
        """``read()``; None, with one warning, when Redis refuses it because a key of the
        ledger has the wrong type (not Spark's). An unreachable Redis still raises."""
        try:
            return read()
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            report_damage(self.describe(), 1, str(exc))
            return None

    def _top_requests(self, limit: int) -> list[RequestRow]:
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
        members = [member for member, _ in ranked]  # (as Redis holds them: bytes)
        saved, infos = self.store.execute(
            lambda pipe: (
                pipe.zmscore(self.prefix + "req:saved", members),
                pipe.hmget(self.prefix + "req:info", members),
            ),
            transaction=False,
        )
        rows, refused = [], 0
        for member, (_, hits), money, info in zip(members, ranked, saved, infos, strict=True):
            key = member.decode("utf-8", "backslashreplace")  # (shown, never looked up again)
            provider, model_id, last = _info_parts(info)
            row, bad = RequestRow.read_back(key, provider, model_id, (hits, money or 0, last))
            rows.append(row)
            refused += bad
        report_damage(self.describe(), refused)
        return sorted(rows, key=lambda row: (-row.hits, row.key))


def _texts(values: Any) -> tuple[list[str], int]:
    """The values that are text (UTF-8), and how many were not (not Spark's: skipped)."""
    found: list[str] = []
    for value in values:
        with contextlib.suppress(UnicodeDecodeError):
            found.append(text(value))
    return found, len(values) - len(found)


def _field_parts(raw: bytes) -> tuple[str, str, str] | None:
    """(counter, provider, model_id) of a day hash's field; None when it is none of ours."""
    try:
        parts = raw.decode().split("\t", 2)
    except UnicodeDecodeError:
        return None
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _info_parts(info: Any) -> tuple[str, str, str | None]:
    """(provider, model_id, last hit) of a request's info; blanks when it is damaged."""
    try:
        provider, rest = info.decode().split("\t", 1)
        model_id, last = rest.rsplit("\t", 1)  # a model id may hold anything, even a tab
    except (AttributeError, UnicodeDecodeError, ValueError):  # (None, or no tabs)
        return "", "", None
    return provider, model_id, last or None
