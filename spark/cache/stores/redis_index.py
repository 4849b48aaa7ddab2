"""The Redis store's index sets: how its every-entry operations find the entries without KEYS.

``P models`` lists the "{provider}/{model_slot}" that have entries and ``P idx:{model}`` the
keys of each (one pair per shard on a cluster: ``redis.py`` has the layout). ``find`` looks a
key up under the models ``P models`` lists, else SCANs for it; listing SSCANs the index sets and
pipelines ``STRLEN``; members whose entry Redis already expired or evicted are dropped as they
are met; ``rebuild`` finds entries an evicted index set hides (a SCAN).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from spark.cache.stores.base import EntryRef

if TYPE_CHECKING:
    from spark.cache.stores.redis import RedisStore

__all__ = ["Pipe", "RedisIndex", "text"]

logger = logging.getLogger("spark.cache")

_BATCH = 500  # members per SSCAN page, entries per STRLEN pipeline
_SETS_PER_ROUND = 32  # index sets scanned together (one pipeline)
# Forget a model whose index is empty, atomically: a writer adds to both sets in one MULTI.
_DROP_EMPTY = (
    "if redis.call('SCARD', KEYS[2]) == 0 then return redis.call('SREM', KEYS[1], ARGV[1]) end"
)
Pipe = Any  # a redis-py Pipeline or ClusterPipeline


def text(value: bytes | str) -> str:
    """A reply as text (replies are bytes: the client does not decode)."""
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(value: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", value)


class RedisIndex:
    """The index sets of one ``RedisStore`` (its names, commands and circuit breaker)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._reported: set[str] = set()
        self._foreign: set[str] = set()  # index keys met holding another type than a set

    def skip(self, name: str, why: object, *, foreign_key: bool = False) -> None:
        """Skip a key or member that is not Spark's (a key of the wrong type, a member that is
        not UTF-8): anyone who can write to the server can add one; one warning each.
        ``verify --repair`` deletes a ``foreign_key`` (``rebuild``)."""
        if foreign_key:
            self._foreign.add(name)
        if name not in self._reported:
            self._reported.add(name)
            logger.warning("skipping %r in %s, which is not Spark's: %s", name, self.store.url, why)

    def model_sets(
        self, provider: str | None = None, model_slot: str | None = None
    ) -> list[tuple[str, str]]:
        """(shard, "{provider}/{model_slot}") of every index set, optionally of one provider /
        model folder."""
        store = self.store
        names = [store.models_name(s) for s in store.shards]
        replies = store.each("smembers", names, errors_as_replies=True)
        pairs = []
        for shard, name, members in zip(store.shards, names, replies, strict=True):
            if isinstance(members, Exception):
                self.skip(name, members, foreign_key=True)
                continue
            for model in self._texts(members, name):
                prov, _, slot = model.partition("/")
                if (provider is None or prov == provider) and (model_slot in (None, slot)):
                    pairs.append((shard, model))
        return sorted(pairs, key=lambda pair: (pair[1], pair[0]))

    def scan(self, sets: list[tuple[str, str]]) -> Iterator[tuple[str, list[str], list[int]]]:
        """(model, keys, entry sizes) of the index sets ``sets``, a page at a time, several sets
        per pipeline. Members whose entry is gone (size 0: expired or evicted) are removed from
        their index on the way."""
        store = self.store
        pending = list(sets)
        cursors: dict[tuple[str, str], int] = {}
        seen: dict[tuple[str, str], set[str]] = defaultdict(set)  # SSCAN may repeat a member
        while pending:
            group, pending = pending[:_SETS_PER_ROUND], pending[_SETS_PER_ROUND:]
            pages = store.execute(
                partial(self._sscan, group, cursors), transaction=False, errors_as_replies=True
            )
            found: list[tuple[tuple[str, str], list[str]]] = []
            for pair, page in zip(group, pages, strict=True):
                index = store.index_name(*pair)
                if isinstance(page, Exception):
                    self.skip(index, page, foreign_key=True)
                    continue
                cursor, members = page
                keys = sorted(set(self._texts(members, index)) - seen[pair])
                seen[pair].update(keys)
                found.append((pair, keys))
                if int(cursor):
                    cursors[pair] = int(cursor)
                    pending.append(pair)
            names = [store.prefix + s + "e:" + f"{m}/{k}" for (s, m), keys in found for k in keys]
            # (an entry of another type than a string: size 1, so its read names it as unusable)
            replies = store.each("strlen", names, errors_as_replies=True)
            sizes = iter(1 if isinstance(size, Exception) else int(size) for size in replies)
            gone: list[tuple[str, list[str]]] = []
            for (shard, model), keys in found:
                got = [next(sizes) for _ in keys]
                missing = [k for k, size in zip(keys, got, strict=True) if not size]
                if missing:
                    gone.append((store.index_name(shard, model), missing))
                yield model, keys, got
            if gone:
                store.execute(partial(_srem_each, gone), transaction=False)

    def _texts(self, members: Any, where: str) -> Iterator[str]:
        """The members that are text (UTF-8); any other is skipped, with one warning."""
        for member in members:
            try:
                yield text(member)
            except UnicodeDecodeError as exc:
                self.skip(f"{where} member {member!r}", exc)

    def _sscan(
        self, group: list[tuple[str, str]], cursors: dict[tuple[str, str], int], pipe: Pipe
    ) -> None:
        for shard, model in group:
            index = self.store.index_name(shard, model)
            pipe.sscan(index, cursors.get((shard, model), 0), count=_BATCH)

    def find(self, key: str, known: Iterable[str] = ()) -> str | None:
        """The location of the entry of ``key`` (a valid key): under the models its shard's
        ``models`` set lists and the ``known`` ones (one pipelined EXISTS each); when there is
        no ``models`` set, by a SCAN for ``P e:*/{key}``, so an entry whose index was evicted,
        deleted or is not a set is still found. Members and keys that are not Spark's are skipped, as ``walk``
        skips them."""
        store = self.store
        name = store.models_name(store.shard(key))
        [members] = store.each("smembers", [name], errors_as_replies=True)
        if isinstance(members, Exception):  # (a models key of another type: not Spark's)
            self.skip(name, members, foreign_key=True)
            members = ()
        paths = [f"{model}/{key}" for model in sorted({*self._texts(members, name), *known})]
        found = store.each("exists", [store.entry_name(path) for path in paths])
        listed = next((path for path, hit in zip(paths, found, strict=True) if hit), None)
        if listed is not None or members:
            return listed
        # No ``models`` set (evicted, deleted, or not a set): it would hide an entry that
        # serves hits from has_entry and remove_entry, so SCAN for it (one pass over the
        # server's keys, as verify pays; only then: rejected, a SCAN for every key with no
        # entry, which makes has_entry cost seconds on a big server: docs/redis.md).
        pattern = _glob_escape(store.prefix + store.shard(key)) + "e:*/" + key
        return min((path for _, path in self._entries(pattern)), default=None)

    def _entries(self, pattern: str) -> Iterator[tuple[str, str]]:
        """(shard, location) of every entry key that matches ``pattern`` (a SCAN: on a cluster
        on every master); a name that is not UTF-8 is skipped, with one warning."""
        store = self.store
        for name in store.run(lambda: list(store.client.scan_iter(match=pattern, count=1000))):
            try:
                rest = text(name)[len(store.prefix) :]
            except UnicodeDecodeError as exc:
                self.skip(repr(name), exc)
                continue
            shard, _, path = rest.partition("e:") if store.cluster else ("", "", rest[2:])
            yield shard, path

    def walk(
        self, provider: str | None = None, model_slot: str | None = None
    ) -> Iterator[EntryRef]:
        """Every live entry (optionally of one provider / model folder) with its size."""
        for model, keys, sizes in self.scan(self.model_sets(provider, model_slot)):
            prov, _, slot = model.partition("/")
            for key, size in zip(keys, sizes, strict=True):
                if size:
                    yield EntryRef(f"{model}/{key}", prov, slot, key, size, 0)

    def drop_dangling(self) -> int:
        """Drop the index members whose entry Redis has expired or evicted; how many."""
        removed = sum(sizes.count(0) for _, _, sizes in self.scan(self.model_sets()))
        self.forget_empty()
        return removed

    def rebuild(self, repair: bool = False) -> tuple[int, int]:
        """(entries the index sets miss, index members whose entry is gone): every entry is
        found with SCAN (on a cluster: on every master). With ``repair`` the missing entries are
        indexed again; dangling members are always dropped. An index set evicted under
        ``allkeys-lru`` hides its entries from listings until this runs. ``repair`` first
        deletes the index keys that hold another type than a set (not Spark's: they would fail
        every write), so they are made again."""
        store = self.store
        if repair:
            self._drop_foreign()
        dangling = self.drop_dangling()
        shard_glob = "{??}" if store.cluster else ""
        pattern = _glob_escape(store.prefix) + shard_glob + "e:*"
        missing = 0
        batch: list[tuple[str, str, str]] = []
        for shard, path in self._entries(pattern):
            parts = path.split("/")
            if len(parts) == 3:
                batch.append((shard, f"{parts[0]}/{parts[1]}", parts[2]))
        for start in range(0, len(batch), _BATCH):
            missing += self._reindex(batch[start : start + _BATCH], repair)
        return missing, dangling

    def _drop_foreign(self) -> None:
        store = self.store
        names = sorted({*(store.models_name(shard) for shard in store.shards), *self._foreign})
        kinds = store.each("type", names)
        foreign = [
            name
            for name, kind in zip(names, kinds, strict=True)
            if text(kind) not in ("set", "none")
        ]
        if foreign:
            logger.warning(
                "deleting %s in %s: not Spark's index sets", ", ".join(foreign), store.url
            )
            store.each("delete", foreign)
        self._foreign.clear()

    def _reindex(self, entries: list[tuple[str, str, str]], repair: bool) -> int:
        store = self.store

        def check(pipe: Pipe) -> None:
            for shard, model, key in entries:
                pipe.sismember(store.models_name(shard), model)
                pipe.sismember(store.index_name(shard, model), key)

        replies = store.execute(check, transaction=False, errors_as_replies=True)
        lost = [  # (an error reply, from an index key of another type, is no "yes")
            entry
            for entry, listed, indexed in zip(entries, replies[::2], replies[1::2], strict=True)
            if not (listed == 1 and indexed == 1)
        ]
        if repair and lost:

            def add(pipe: Pipe) -> None:
                for shard, model, key in lost:
                    pipe.sadd(store.models_name(shard), model)
                    pipe.sadd(store.index_name(shard, model), key)

            store.execute(add, transaction=False)
        return len(lost)

    def forget_empty(self, provider: str | None = None, model_slot: str | None = None) -> None:
        """Forget the models whose index is now empty (atomically, racing no writer)."""
        store = self.store
        pairs = self.model_sets(provider, model_slot)
        if not pairs:
            return

        def build(pipe: Pipe) -> None:
            for shard, model in pairs:
                keys = (store.models_name(shard), store.index_name(shard, model))
                pipe.execute_command("EVAL", _DROP_EMPTY, 2, *keys, model)

        replies = store.execute(build, transaction=False, errors_as_replies=True)
        for (shard, model), reply in zip(pairs, replies, strict=True):
            if isinstance(reply, Exception):  # (an index set of another type: not Spark's)
                self.skip(store.index_name(shard, model), reply, foreign_key=True)


def _srem_each(gone: list[tuple[str, list[str]]], pipe: Pipe) -> None:
    for index, keys in gone:
        pipe.srem(index, *keys)
