"""The Redis store: entry bytes in a shared Redis (or Valkey), so a fleet shares one cache.

Layout under the cache's key prefix ``P`` (``spark:`` by default, so teams can share a server)::

    P e:{provider}/{model_slot}/{key}   the entry: the same envelope bytes a disk file holds,
                                       expiring natively at its expires_at (SET ... PXAT)
    P models                           set of "{provider}/{model_slot}" that have entries
    P idx:{provider}/{model_slot}       set of the keys of one model's entries
    P lock:{key}                       the cross-process claim of a miss (SET NX PX)
    P ledger:...                       hit/miss figures (``spark.cache.ledger.redis``)

On a Redis Cluster the entries are spread over 256 shards, the first two hex digits ``ab`` of
the key, each a hash tag: ``P{ab}e:...``, ``P{ab}models`` and ``P{ab}idx:...``. An entry and its
index members share a slot, so a write is still one MULTI; the ledger is ``P{ledger}:...``, in
one slot. A single server is one shard with no tag (the layout above).

A location (``location``) is ``{provider}/{model_slot}/{key}``, the disk layout without the
root; ``model_slot`` is ``quote_model_id``'s, so it never holds a ``/``. The index sets
(``redis_index.py``) let statistics, clearing and listing work without ``KEYS``: ``walk``
SSCANs them and pipelines ``STRLEN``; members whose entry Redis has already expired or evicted
are dropped from the index as they are met. Eviction is Redis's ``maxmemory-policy``; an entry
whose index was evicted is found again by ``rebuild_index`` (a SCAN). Every failure is a
``StoreError``; an unreachable server opens the circuit breaker (``StoreUnavailableError``), on
a cluster the breaker of the node that holds the key.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis
from redis.exceptions import AskError, RedisClusterException

from spark.cache.codec import decode_envelope
from spark.cache.keys import is_key
from spark.cache.stores.base import (
    MAX_ENTRY_BYTES,
    EntryRef,
    EntryRefusedError,
    StoreError,
    Version,
)
from spark.cache.stores.breaker import CircuitBreaker
from spark.cache.stores.disk import check_provider, quote_model_id
from spark.cache.stores.redis_index import Pipe, RedisIndex, text

if TYPE_CHECKING:
    from spark.cache.ledger import LedgerSink

__all__ = ["SHARDS", "RedisStore", "text"]

T = TypeVar("T")
#: The hash tags of a cluster's shards: every two-hex-digit start of a key.
SHARDS: tuple[str, ...] = tuple(f"{{{n:02x}}}" for n in range(256))
# Compare-and-delete: a process only ever releases its own claim, never one that expired and
# was taken over by another process (rejected: GET then DEL, which races exactly there).
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
# Compare-and-extend, for the same reason: renew the claim only while it is still ours.
_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)
# SET NX PX, except that a key that can be no live claim is taken over: one of another type, or
# one without an expiry (PERSISTed, planted): NX alone would wait on it forever.
_CLAIM = (
    "if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' or redis.call('PTTL', KEYS[1]) == -1 then "
    "return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end "
    "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])"
)
# GET, unless the value is over the limit of one entry: then only its length.
_READ = (
    "local n = redis.call('STRLEN', KEYS[1]) "
    "if n > tonumber(ARGV[1]) then return n end return redis.call('GET', KEYS[1])"
)
_LIMIT = [MAX_ENTRY_BYTES]
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError, RedisClusterException)


def _envelope_expiry(data: bytes) -> float | None:
    try:
        return decode_envelope(data).meta.expires_at
    except Exception:  # (what the reader refuses has no expiry to keep)
        return None


class RedisStore:
    """Entry bytes in Redis under one key prefix; see the module docstring for the layout.

    ``connect`` builds the client (``redis.Redis``, or ``RedisCluster`` with ``cluster``); it
    is called on first use, behind the circuit breaker. ``where`` names the server(s).
    """

    validates_cheaply = False  # a version would be a round trip: no memory tier
    evicts = False  # Redis's maxmemory-policy evicts

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        url: str,
        prefix: str = "spark:",
        cooldown_s: float = 5.0,
        lock_s: float = 30.0,
        cluster: bool = False,
    ) -> None:
        self._connect = connect
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._connecting = threading.Lock()
        self.url = url
        self.prefix = prefix
        self.cluster = cluster
        self.lock_ms = int(lock_s * 1000)
        self.cooldown_s = cooldown_s
        self.breaker = CircuitBreaker(f"Redis {url}" if not cluster else url, cooldown_s)
        self._node_breakers: dict[str, CircuitBreaker] = {}
        self._dirs: dict[tuple[str, str], str] = {}
        self.shards: tuple[str, ...] = SHARDS if cluster else ("",)
        self.index = RedisIndex(self)

    def describe(self) -> str:
        """The server(s) (password hidden) and the key prefix."""
        return f"{self.url} prefix {self.prefix!r}"

    @property
    def client(self) -> Any:
        """The client, built on first use (call it inside ``run``: building may fail)."""
        client = self._client
        if client is None:
            with self._connecting:
                if self._client is None:
                    built = self._connect()
                    scripts = (_READ, _CLAIM, _UNLOCK, _RENEW)
                    self._scripts = {s: built.register_script(s) for s in scripts}
                    self._client = built
                client = self._client
        return client

    # -- names ----------------------------------------------------------------------------

    def shard(self, key: str) -> str:
        """The hash tag of ``key``'s shard ("" on one server)."""
        return "{" + key[:2] + "}" if self.cluster else ""

    def entry_name(self, path: str) -> str:
        """The Redis key of the entry at ``path``."""
        return self.prefix + self.shard(path[path.rfind("/") + 1 :]) + "e:" + path

    def models_name(self, shard: str) -> str:
        return self.prefix + shard + "models"

    def index_name(self, shard: str, model: str) -> str:
        return f"{self.prefix}{shard}idx:{model}"

    # -- running commands -----------------------------------------------------------------

    def run(self, operation: Callable[[], T], name: str | None = None) -> T:
        """``operation()`` behind the circuit breaker (on a cluster: of the node holding the
        key ``name``), Redis errors translated to ``StoreError``."""
        breaker = self._breaker_of(name)
        breaker.check()
        try:
            result = operation()
        except _UNREACHABLE as exc:
            raise breaker.failed(exc) from exc
        except redis.RedisError as exc:  # e.g. OOM under noeviction, READONLY replica
            raise StoreError(f"{breaker.where}: {exc}") from exc
        breaker.succeeded()
        return result

    def _breaker_of(self, name: str | None) -> CircuitBreaker:
        if name is None or not self.cluster or self._client is None:
            return self.breaker
        try:
            node = self._client.get_node_from_key(name)
        except (redis.RedisError, RedisClusterException):  # the slot map is being rebuilt
            return self.breaker
        if node is None:
            return self.breaker
        breaker = self._node_breakers.get(node.name)
        if breaker is None:
            where = f"{self.url} node {node.name}"
            breaker = self._node_breakers.setdefault(
                node.name, CircuitBreaker(where, self.cooldown_s)
            )
        return breaker

    def execute(
        self,
        build: Callable[[Pipe], object],
        *,
        transaction: bool,
        name: str | None = None,
        errors_as_replies: bool = False,
    ) -> list[Any]:
        """The replies of the commands ``build`` queues on a pipeline (a MULTI when
        ``transaction``: on a cluster all its keys must share a slot). With
        ``errors_as_replies`` a command Redis refuses (a key of the wrong type) gives its error
        as its reply instead of failing the whole pipeline."""

        def send() -> list[Any]:
            pipe = self.client.pipeline(transaction=transaction)
            build(pipe)
            return cast("list[Any]", pipe.execute(raise_on_error=not errors_as_replies))

        return self.run(send, name)

    def each(
        self, command: str, names: Iterable[str], *args: Any, errors_as_replies: bool = False
    ) -> list[Any]:
        """``command name *args`` for every name, pipelined (a cluster groups them by node)."""
        listed = list(names)
        if not listed:
            return []
        return self.execute(
            lambda pipe: [getattr(pipe, command)(n, *args) for n in listed],
            transaction=False,
            errors_as_replies=errors_as_replies,
        )

    # -- one entry ------------------------------------------------------------------------

    def location(self, provider: str, model_id: str, key: str) -> str:
        """``{provider}/{model_slot}/{key}`` (the model part is memoized: this is the hit path)."""
        folder = self._dirs.get((provider, model_id))
        if folder is None:
            folder = f"{check_provider(provider)}/{quote_model_id(model_id)}"
            self._dirs[(provider, model_id)] = folder
        return f"{folder}/{key}"

    def read(self, path: str, *, touch: bool = True) -> tuple[bytes, Version] | None:
        """The entry's bytes (None when Redis has none: never written, expired or evicted).
        A value over ``MAX_ENTRY_BYTES`` is refused by its length, never fetched (Redis strings
        go up to 512 MB: one would take the whole timeout and open the circuit for every call).
        Redis tracks uses itself."""
        name = self.entry_name(path)
        found = self.run(partial(self._get, name), name)
        if found is None:
            return None
        if not isinstance(found, bytes):
            raise EntryRefusedError(f"{found} bytes, over the limit of one entry")
        return found, (0, 0, len(found))

    def _get(self, name: str) -> bytes | int | None:
        """The value, or its length when over the limit (``_READ``: one round trip, as a GET);
        on a cluster straight from the node that holds the slot (the hit path), through the
        cluster client (which follows a moved slot) only when that node redirects."""
        client = self.client
        read = self._scripts[_READ]
        if self.cluster:
            node = client.get_node_from_key(name)
            if node is not None and node.redis_connection is not None:
                try:
                    return cast("bytes | int | None", read([name], _LIMIT, node.redis_connection))
                except AskError:  # (MOVED too) the slot has moved: let the cluster client follow
                    pass
        return cast("bytes | int | None", read([name], _LIMIT, client))

    def version(self, path: str) -> Version | None:
        """(0, 0, size) of the entry, None when it is gone."""
        name = self.entry_name(path)
        size = int(self.run(lambda: self.client.strlen(name), name))
        return (0, 0, size) if size else None

    def write(self, path: str, data: bytes, expires_at: float | None = None) -> Version:
        """SET the entry (expiring natively at ``expires_at``, by default the envelope's own, so
        a rewrite keeps its expiry) and index it, in one MULTI."""
        model, _, key = path.rpartition("/")  # (model: "{provider}/{model_slot}")
        name, shard = self.entry_name(path), self.shard(key)
        if expires_at is None:
            expires_at = _envelope_expiry(data)

        def build(pipe: Pipe) -> None:
            if expires_at is None:
                pipe.set(name, data)
            elif expires_at <= time.time():
                pipe.delete(name)  # already expired (a rewrite of an old entry): nothing to keep
            else:
                pipe.set(name, data, pxat=int(expires_at * 1000))
            pipe.sadd(self.models_name(shard), model)
            pipe.sadd(self.index_name(shard, model), key)

        self.execute(build, transaction=True, name=name)
        return (0, 0, len(data))

    def touch(self, path: str, version: Version, now_ns: int) -> None:
        """Nothing to do: Redis tracks each key's last use itself (for ``*-lru`` policies)."""

    def remove(self, path: str) -> bool:
        """DEL the entry and drop it from its index (an index key of another type is skipped,
        with one warning); False when the entry was already gone."""
        # (a walk's location is "{index member}/{key}" whatever the member: a hostile one with
        # more or fewer slashes is deleted from where it was found)
        model, _, key = path.rpartition("/")
        name, index = self.entry_name(path), self.index_name(self.shard(key), model)

        def build(pipe: Pipe) -> None:
            pipe.delete(name)
            pipe.srem(index, key)

        deleted, unindexed = self.execute(
            build, transaction=True, name=name, errors_as_replies=True
        )
        if isinstance(unindexed, Exception):  # (an index of another type: the DEL still ran)
            self.index.skip(index, unindexed, foreign_key=True)
        return bool(deleted)

    def remove_all(self, locations: list[str]) -> int:
        """Delete entries one by one (each with its index); how many were removed."""
        return sum(self.remove(location) for location in locations)

    def find(self, key: str) -> str | None:
        """The location of ``key`` under any provider/model (``RedisIndex.find``: the models of
        the index and those this process has used first)."""
        return self.index.find(key, list(self._dirs.values())) if is_key(key) else None

    # -- every entry (the index sets: ``redis_index.py``) ------------------------------

    def walk(
        self, provider: str | None = None, model_slot: str | None = None
    ) -> Iterator[EntryRef]:
        """Every live entry (optionally of one provider / model folder) with its size."""
        return self.index.walk(provider, model_slot)

    def cleanup_expired(self, now: float | None = None) -> int:
        """Drop index members of entries Redis has expired or evicted; returns how many.

        Redis deletes an entry at its ``expires_at`` by itself (``now`` is Redis's clock).
        """
        return self.index.drop_dangling()

    def rebuild_index(self, repair: bool = False) -> tuple[int, int]:
        """(entries the index sets miss, index members whose entry is gone); with ``repair``
        the missing entries are indexed again (``RedisIndex.rebuild``)."""
        return self.index.rebuild(repair)

    def evict(self, max_bytes: int) -> tuple[int, int]:
        """Nothing (Redis's maxmemory-policy evicts); returns (0, Redis's used memory: on a
        cluster, of every master)."""

        def used() -> int:
            if not self.cluster:
                return int(self.client.info("memory").get("used_memory", 0))
            info = self.client.info("memory", target_nodes="primaries")
            if "used_memory" in info:  # (one master answered)
                return int(info["used_memory"])
            return sum(int(node.get("used_memory", 0)) for node in info.values())

        return 0, self.run(used)

    def after_clear(self, provider: str | None = None, model_slot: str | None = None) -> None:
        """Forget the models whose index is now empty (atomically, racing no writer)."""
        self.index.forget_empty(provider, model_slot)

    def ledger_sink(self) -> LedgerSink:
        """Hashes and sorted sets beside the entries (``spark.cache.ledger.redis``)."""
        from spark.cache.ledger.redis import RedisLedger

        return RedisLedger(self, self.prefix + ("{ledger}:" if self.cluster else "ledger:"))

    # -- single flight across processes ---------------------------------------------------

    def try_lock(self, key: str) -> str | None:
        """``SET P lock:{key} token NX PX lock_ms``: the token, or None when another holds it
        (a key there that can be no live claim is taken over: ``_CLAIM``)."""
        token = secrets.token_hex(8)
        name = self.prefix + "lock:" + key
        taken = self.run(partial(self._script, _CLAIM, name, token, self.lock_ms), name)
        return token if taken else None

    def renew_lock(self, key: str, token: str) -> bool:
        """Extend our claim to a full ``lock_ms`` again (compare-and-PEXPIRE in Lua)."""
        name = self.prefix + "lock:" + key
        return bool(self.run(partial(self._script, _RENEW, name, token, self.lock_ms), name))

    def unlock(self, key: str, token: str) -> None:
        """Delete the claim only if it still holds our token (compare-and-delete in Lua)."""
        name = self.prefix + "lock:" + key
        self.run(partial(self._script, _UNLOCK, name, token), name)

    def _script(self, script: str, name: str, *args: object) -> Any:
        """Run one of the Lua scripts on the key ``name`` (EVALSHA, loaded when missing)."""
        client = self.client
        return self._scripts[script](keys=[name], args=list(args), client=client)
