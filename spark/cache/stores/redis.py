"""The Redis store: entry bytes in a shared Redis (or Valkey), so a fleet shares one cache.

Layout under the cache's key prefix ``P`` (``spark:`` by default, so teams can share a server)::

    P e:{provider}/{model_slot}/{key}   the entry: the same envelope bytes a disk file holds,
                                       expiring natively at its expires_at (SET ... PXAT)
    P models                           set of "{provider}/{model_slot}" that have entries
    P idx:{provider}/{model_slot}       set of the keys of one model's entries
    P lock:{key}                       the cross-process claim of a miss (SET NX PX)
    P ledger:...                       hit/miss figures (``spark.cache.ledger.redis``)

A location (``location``) is ``{provider}/{model_slot}/{key}``, the disk layout without the
root; ``model_slot`` is ``quote_model_id``'s, so it never holds a ``/``. The index sets let
statistics, clearing and listing work without ``KEYS``: ``walk`` SSCANs them and pipelines
``STRLEN``; members whose entry Redis has already expired or evicted are dropped from the index
as they are met. Eviction is Redis's ``maxmemory-policy``. Every failure is a ``StoreError``;
an unreachable server opens the circuit breaker (``StoreUnavailableError``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from spark.cache.codec import decode_envelope
from spark.cache.config import CacheConfig, redact_url
from spark.cache.stores.base import (
    MAX_ENTRY_BYTES,
    EntryRef,
    EntryRefusedError,
    StoreError,
    Version,
)
from spark.cache.stores.breaker import CircuitBreaker
from spark.cache.stores.disk import check_provider, quote_model_id

if TYPE_CHECKING:
    from spark.cache.ledger import LedgerSink

__all__ = ["RedisStore", "connect", "text"]

T = TypeVar("T")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_BATCH = 500
# Compare-and-delete: a process only ever releases its own claim, never one that expired and
# was taken over by another process (rejected: GET then DEL, which races exactly there).
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
# Forget a model whose index is empty, atomically: a writer adds to both sets in one MULTI.
_DROP_EMPTY = (
    "if redis.call('SCARD', KEYS[2]) == 0 then return redis.call('SREM', KEYS[1], ARGV[1]) end"
)
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


def connect(config: CacheConfig, password: str | None) -> redis.Redis:
    """A client for ``config.url`` with short socket timeouts and no retry of a timeout.

    A refused connection is retried once at once (a pooled connection may predate a server
    restart); a timeout is not, so a hung server costs one ``timeout_ms``, not several.
    """
    timeout = config.timeout_ms / 1000
    extra: dict[str, Any] = {"password": password} if password else {}
    return redis.Redis.from_url(
        str(config.url),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        **extra,
    )


def _envelope_expiry(data: bytes) -> float | None:
    try:
        return decode_envelope(data).meta.expires_at
    except Exception:  # (what the reader refuses has no expiry to keep)
        return None


def text(value: bytes | str) -> str:
    """A reply as text (replies are bytes: the client does not decode)."""
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
    """Entry bytes in Redis under one key prefix; see the module docstring for the layout."""

    validates_cheaply = False  # a version would be a round trip: no memory tier
    evicts = False  # Redis's maxmemory-policy evicts

    def __init__(
        self,
        client: redis.Redis,
        *,
        url: str,
        prefix: str = "spark:",
        cooldown_s: float = 5.0,
        lock_s: float = 30.0,
    ) -> None:
        self.client = client
        self.url = redact_url(url)
        self.prefix = prefix
        self.lock_ms = int(lock_s * 1000)
        self.breaker = CircuitBreaker(f"Redis {self.url}", cooldown_s)
        self._dirs: dict[tuple[str, str], str] = {}
        self._unlock = client.register_script(_UNLOCK)
        self._drop_empty = client.register_script(_DROP_EMPTY)

    def describe(self) -> str:
        """The URL (password hidden) and the key prefix."""
        return f"{self.url} prefix {self.prefix!r}"

    # -- one entry ------------------------------------------------------------------------

    def location(self, provider: str, model_id: str, key: str) -> str:
        """``{provider}/{model_slot}/{key}`` (the model part is memoized: this is the hit path)."""
        folder = self._dirs.get((provider, model_id))
        if folder is None:
            folder = f"{check_provider(provider)}/{quote_model_id(model_id)}"
            self._dirs[(provider, model_id)] = folder
        return f"{folder}/{key}"

    def run(self, operation: Callable[[], T]) -> T:
        """``operation()`` behind the circuit breaker, Redis errors translated to ``StoreError``."""
        self.breaker.check()
        try:
            result = operation()
        except _UNREACHABLE as exc:
            raise self.breaker.failed(exc) from exc
        except redis.RedisError as exc:  # e.g. OOM under noeviction, READONLY replica
            raise StoreError(f"Redis {self.url}: {exc}") from exc
        self.breaker.succeeded()
        return result

    def read(self, path: str, *, touch: bool = True) -> tuple[bytes, Version] | None:
        """The entry's bytes (None when Redis has none: never written, expired or evicted);
        an entry over ``MAX_ENTRY_BYTES`` is refused. Redis tracks uses itself."""
        name = self.prefix + "e:" + path
        data = cast("bytes | None", self.run(lambda: self.client.get(name)))
        if data is not None and len(data) > MAX_ENTRY_BYTES:
            raise EntryRefusedError(f"{len(data)} bytes, over the limit of one entry")
        return None if data is None else (data, (0, 0, len(data)))

    def version(self, path: str) -> Version | None:
        """(0, 0, size) of the entry, None when it is gone."""
        size = int(self.run(lambda: self.client.strlen(self.prefix + "e:" + path)))
        return (0, 0, size) if size else None

    def write(self, path: str, data: bytes, expires_at: float | None = None) -> Version:
        """SET the entry (expiring natively at ``expires_at``, by default the envelope's own, so
        a rewrite keeps its expiry) and index it, in one MULTI."""
        provider, model_slot, key = path.split("/")
        name = self.prefix + "e:" + path
        if expires_at is None:
            expires_at = _envelope_expiry(data)
        pipe = self.client.pipeline(transaction=True)
        if expires_at is None:
            pipe.set(name, data)
        elif expires_at <= time.time():
            pipe.delete(name)  # already expired (a rewrite of an old entry): nothing to keep
        else:
            pipe.set(name, data, pxat=int(expires_at * 1000))
        pipe.sadd(self.prefix + "models", f"{provider}/{model_slot}")
        pipe.sadd(f"{self.prefix}idx:{provider}/{model_slot}", key)
        self.run(pipe.execute)
        return (0, 0, len(data))

    def touch(self, path: str, version: Version, now_ns: int) -> None:
        """Nothing to do: Redis tracks each key's last use itself (for ``*-lru`` policies)."""

    def remove(self, path: str) -> bool:
        """DEL the entry and drop it from its index; False when it was already gone."""
        provider, model_slot, key = path.split("/")
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.prefix + "e:" + path)
        pipe.srem(f"{self.prefix}idx:{provider}/{model_slot}", key)
        deleted, _ = self.run(pipe.execute)
        return bool(deleted)

    def find(self, key: str) -> str | None:
        """The location of ``key`` under any provider/model (one pipelined EXISTS per model)."""
        if not _KEY_RE.match(key):
            return None
        paths = [f"{model}/{key}" for model in sorted(self._models())]
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            pipe.exists(self.prefix + "e:" + path)
        found = self.run(pipe.execute) if paths else []
        return next((path for path, hit in zip(paths, found, strict=True) if hit), None)

    # -- every entry ----------------------------------------------------------------------

    def _models(self) -> set[str]:
        members = self.run(lambda: self.client.smembers(self.prefix + "models"))
        return {text(member) for member in members}

    def _selected(self, provider: str | None, model_slot: str | None) -> list[tuple[str, str]]:
        pairs = (tuple(model.split("/", 1)) for model in self._models())
        return sorted(
            (p, m)
            for p, m in pairs
            if (provider is None or p == provider) and (model_slot is None or m == model_slot)
        )

    def _batches(self, provider: str, model_slot: str) -> Iterator[tuple[list[str], list[int]]]:
        """(keys, entry sizes) of one model's index, a batch at a time. Members whose entry is
        gone (size 0: expired or evicted) are removed from the index on the way."""
        index = f"{self.prefix}idx:{provider}/{model_slot}"
        stem = f"{self.prefix}e:{provider}/{model_slot}/"
        seen: set[str] = set()  # SSCAN may repeat a member while the set is rehashed
        cursor = 0
        while True:
            cursor, members = self.run(partial(self.client.sscan, index, cursor, count=_BATCH))
            keys = sorted({text(m) for m in members} - seen)
            seen.update(keys)
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.strlen(stem + key)
            sizes = [int(size) for size in self.run(pipe.execute)] if keys else []
            gone = [key for key, size in zip(keys, sizes, strict=True) if not size]
            if gone:
                self.run(partial(self.client.srem, index, *gone))
            yield keys, sizes
            if not cursor:
                return

    def walk(
        self, provider: str | None = None, model_slot: str | None = None
    ) -> Iterator[EntryRef]:
        """Every live entry (optionally of one provider / model folder) with its size."""
        for prov, model in self._selected(provider, model_slot):
            for keys, sizes in self._batches(prov, model):
                for key, size in zip(keys, sizes, strict=True):
                    if size:
                        yield EntryRef(f"{prov}/{model}/{key}", prov, model, key, size, 0)

    def cleanup_expired(self, now: float | None = None) -> int:
        """Drop index members of entries Redis has expired or evicted; returns how many.

        Redis deletes an entry at its ``expires_at`` by itself (``now`` is Redis's clock).
        """
        removed = 0
        for prov, model in self._selected(None, None):
            for _, sizes in self._batches(prov, model):
                removed += sizes.count(0)
        self.after_clear()
        return removed

    def evict(self, max_bytes: int) -> tuple[int, int]:
        """Nothing (Redis's maxmemory-policy evicts); returns (0, Redis's used memory)."""
        info: dict[str, Any] = self.run(lambda: self.client.info("memory"))
        return 0, int(info.get("used_memory", 0))

    def after_clear(self, provider: str | None = None, model_slot: str | None = None) -> None:
        """Forget the models whose index is now empty (atomically, racing no writer)."""
        for prov, model in self._selected(provider, model_slot):
            keys = [self.prefix + "models", f"{self.prefix}idx:{prov}/{model}"]
            self.run(partial(self._drop_empty, keys=keys, args=[f"{prov}/{model}"]))

    def ledger_sink(self) -> LedgerSink:
        """Hashes and sorted sets beside the entries (``spark.cache.ledger.redis``)."""
        from spark.cache.ledger.redis import RedisLedger

        return RedisLedger(self)

    # -- single flight across processes ---------------------------------------------------

    def try_lock(self, key: str) -> str | None:
        """``SET P lock:{key} token NX PX lock_ms``: the token, or None when another holds it."""
        token = secrets.token_hex(8)
        name = self.prefix + "lock:" + key
        taken = self.run(lambda: self.client.set(name, token, nx=True, px=self.lock_ms))
        return token if taken else None

    def unlock(self, key: str, token: str) -> None:
        """Delete the claim only if it still holds our token (compare-and-delete in Lua)."""
        name = self.prefix + "lock:" + key
        self.run(lambda: self._unlock(keys=[name], args=[token]))
