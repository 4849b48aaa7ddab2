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
ledger shares a slot. A batch is one Lua script (``_ADD``), applied once, atomically: a figure
Redis refuses (a key of another type, a field that is no number: not Spark's) is left out with
one warning and the others are counted; a batch Redis refuses whole (out of memory, a replica)
is retried, nothing of it having been applied (docs/redis.md, "What is atomic where").
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
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

logger = logging.getLogger("spark.cache")
_COUNTERS = ("hits", "misses", "saved", "spent", "cache_saved")
T = TypeVar("T")
# Each command of a batch, in ARGV as: name, index of its key in KEYS, how many arguments, the
# arguments. A MULTI was rejected: Redis applies the other commands of a MULTI when one fails
# at run time (WRONGTYPE), so a retry of the batch counted those again, without end. Here each
# command runs under pcall: one refused for its figure ("ERR", "WRONGTYPE": it can never be
# added to) is left out and named in the reply, so the batch is applied once and never again.
# An error of the server (OOM, READONLY: Redis refuses a script's first write, never a later
# one) fails the whole script before anything was written, and the batch is retried.
_ADD = """
local refused, wrote, i = {}, false, 1
while i <= #ARGV do
  local key, n = KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  local reply = redis.pcall(ARGV[i], key, unpack(ARGV, i + 3, i + 2 + n))
  if type(reply) == 'table' and reply.err then
    local code = string.match(reply.err, '^%u+')
    if not wrote and code ~= 'ERR' and code ~= 'WRONGTYPE' then return reply end
    table.insert(refused, key)
    table.insert(refused, ARGV[i + 3])
    table.insert(refused, reply.err)
  else
    wrote = true
  end
  i = i + 3 + n
end
return refused
"""


class RedisLedger:
    """A ``LedgerSink`` in the Redis of a ``RedisStore`` (same client, prefix and breaker)."""

    def __init__(self, store: RedisStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self._script: Any = None
        self._refused: set[str] = set()  # figures left out of a batch, warned of once each

    def describe(self) -> str:
        """The Redis and the key prefix of the figures."""
        return f"{self.store.url} prefix {self.prefix!r}"

    def exists(self) -> bool:
        """Whether any figures were recorded."""
        return bool(self.store.run(lambda: self.store.client.exists(self.prefix + "days")))

    def add(self, rows: list[UsageRow], request_rows: list[RequestRow]) -> None:
        """Add one batch with one script (``_ADD``: applied once; a figure Redis refuses is left
        out, with one warning). Raises ``StoreError`` when Redis refuses the whole batch."""
        keys: dict[str, int] = {}  # each key of the batch -> its place in KEYS (from 1)
        args: list[object] = []
        for name, key, values in self._commands(rows, request_rows):
            args += [name, keys.setdefault(key, len(keys) + 1), len(values), *values]
        if not args:
            return
        refused = self.store.run(partial(self._run, list(keys), args), next(iter(keys)))
        for at in range(0, len(refused), 3):
            self._left_out(*(text(part) for part in refused[at : at + 3]))

    def _run(self, keys: list[str], args: list[object]) -> list[Any]:
        client = self.store.client
        if self._script is None:
            self._script = client.register_script(_ADD)
        return cast("list[Any]", self._script(keys=keys, args=args, client=client))

    def _commands(
        self, rows: list[UsageRow], request_rows: list[RequestRow]
    ) -> Iterator[tuple[str, str, list[object]]]:
        """(command, key, arguments) of each figure of the batch."""
        for day, provider, model_id, *counts in rows:
            table, field = f"{self.prefix}day:{day}", f"{provider}\t{model_id}"
            yield "SADD", self.prefix + "days", [day]
            for name, value in zip(_COUNTERS, counts, strict=True):
                if value and name in ("hits", "misses"):
                    yield "HINCRBY", table, [f"{name}\t{field}", int(value)]
                elif value:
                    yield "HINCRBYFLOAT", table, [f"{name}\t{field}", float(value)]
        for row in request_rows:
            yield "ZINCRBY", self.prefix + "req:hits", [row.hits, row.key]
            if row.saved_usd:
                yield "ZINCRBY", self.prefix + "req:saved", [row.saved_usd, row.key]
            info = f"{row.provider}\t{row.model_id}\t{row.last_hit or ''}"
            yield "HSET", self.prefix + "req:info", [row.key, info]

    def _left_out(self, key: str, first: str, error: str) -> None:
        """One warning per figure a batch left out: its key is of another type (the whole key,
        named once) or its field holds no number (that field, once)."""
        what = key if error.startswith("WRONGTYPE") else f"{key} field {first!r}"
        if what not in self._refused:
            self._refused.add(what)
            logger.warning(
                "cache ledger %s: not counting into %s, which is not Spark's (%s); the other "
                "figures are counted (delete it to count there again)",
                self.describe(),
                what,
                error[:100],
            )

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
