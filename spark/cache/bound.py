"""``BoundCache``: one cache used with one model's rules (policy, TTL, keys, namespace).

This is the hit/miss path, so it is kept lean: a hit is one key hash, one ``stat`` and a dict
lookup when the entry is in the memory tier, or one read (a file, or a Redis GET), one decrypt
and one JSON parse when not. A miss is one provider call per key: in this process (an event-loop
future) and, on a store that can lock (Redis), across processes and machines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from spark.cache.codec import EntryMeta, encode_entry
from spark.cache.config import CacheConfig
from spark.cache.crypto import SCHEME, KeyRing
from spark.cache.keys import create_key, keyed_request
from spark.cache.memory import MemoryEntry
from spark.cache.misses import (
    Accept,
    CacheResult,
    ProviderCall,
    ProviderStream,
    call_once,
    replayed_chunks,
    stream_once,
)
from spark.cache.policy import CachePolicy, is_cacheable
from spark.cache.reader import BadEntry, StoredEntry, Where, read_entry
from spark.cache.replay import refused_by_schema, replay_error
from spark.cache.shape import own_copy
from spark.cache.stores.base import USE_RESOLUTION_S, StoreUnavailableError
from spark.errors import CacheMissError

if TYPE_CHECKING:
    from spark.cache.manager import CacheManager

__all__ = [
    "BoundCache",
    "CacheRequest",
    "CacheResult",
    "ProviderCall",
    "ProviderStream",
    "make_request",
    "replayed_chunks",
]

logger = logging.getLogger("spark.cache")
_PLAINTEXT_REFUSED = (
    "refusing plaintext cache entry %s: this cache encrypts, so it takes sealed entries only"
    " (`spark cache rotate-key` encrypts plaintext entries)"
)


class CacheRequest(NamedTuple):
    """A request as the cache sees it: who answers it, its key, and ``normalized``, the keyed
    request it is made from (stored with the answer; docs/caching.md, "Keys")."""

    provider: str
    model_id: str
    key: str
    normalized: Mapping[str, Any]


@functools.cache
def _model_layer() -> tuple[ModuleType, Callable[..., dict[str, Any]]]:
    """The model layer's request builders (the provider's wire shape: pure, never an SDK),
    imported on first use: the cache does not need ``spark.models`` to load."""
    from spark.models import registry
    from spark.models.wire import call_params

    return registry, call_params


def make_request(
    kind: str, provider: str, model_id: str, namespace: str, body: Mapping[str, Any]
) -> CacheRequest:
    """The cache request of a prepared call (``body``: the keyed wire form, docs/models.md)."""
    normalized = keyed_request(kind, provider, model_id, namespace, body)
    return CacheRequest(provider, model_id, create_key(normalized), normalized)


class BoundCache:
    """The cache of one directory seen through one ``CacheConfig``."""

    def __init__(self, manager: CacheManager, config: CacheConfig, keyring: KeyRing | None):
        self.manager = manager
        self.config = config
        self.policy = CachePolicy.from_config(config)
        self.keyring = keyring
        self.namespace = config.namespace
        self._write_keyring = keyring if config.encrypt else None
        # Waiting for another process's answer only pays when both of us read and write.
        self.shares_claims = self.policy.reads and self.policy.writes

    # -- requests -------------------------------------------------------------------------

    def chat_request(
        self, provider: str, model_id: str, messages: str | Sequence[Mapping[str, Any]], **kw: Any
    ) -> CacheRequest:
        """The ``CacheRequest`` of a text call: the same key as ``model.get_text(messages,
        **kw)`` of a model with no default parameters (``namespace=`` overrides this cache's)."""
        registry, call_params = _model_layer()
        namespace = kw.pop("namespace", self.namespace)
        call = registry.prepare_chat(provider, model_id, messages, call_params({}, kw))
        model = registry.cache_model_id(provider, model_id)
        return make_request("chat", provider, model, namespace, call.body)

    def embedding_request(
        self, provider: str, model_id: str, inputs: str | Sequence[str], **kw: Any
    ) -> CacheRequest:
        """The ``CacheRequest`` of an embeddings call (``model.embed(inputs, **kw)``)."""
        registry, call_params = _model_layer()
        namespace = kw.pop("namespace", self.namespace)
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        call = registry.prepare_embedding(provider, model_id, texts, call_params({}, kw))
        model = registry.cache_model_id(provider, model_id)
        return make_request("embedding", provider, model, namespace, call.body)

    def replay_miss(self, request: CacheRequest) -> CacheMissError:
        """The error of a replay-mode miss: what is missing, the nearest entry, the difference."""
        from spark.cache.explain import explain_miss  # only on the (rare) replay-miss path

        return explain_miss(self, request)

    # -- the call path --------------------------------------------------------------------

    async def get_or_call(
        self, request: CacheRequest, call: ProviderCall, accept: Accept | None = None
    ) -> CacheResult:
        """The cached answer, or the provider's (stored per the policy), one call per key.

        Identical concurrent misses in one event loop share the first caller's provider call.
        The response handed out is the caller's own: changing it changes no later hit.
        ``accept``: whether a stored answer may still be served (``get_json``'s schema check);
        one it refuses is a miss, and the provider's answer replaces it.
        """
        if self.policy.reads:
            response = self.lookup(request)
            if response is not None and (accept is None or accept(response)):
                self.manager.counters.record_hit(request, response)
                return CacheResult(response, True, request.key)
            if self.policy.replay:
                self.manager.counters.record_miss(request, None)
                if response is not None:
                    store = self.manager.store
                    where = store.location(request.provider, request.model_id, request.key)
                    raise refused_by_schema(request, where)
                raise self.replay_miss(request)
        return await call_once(self, request, call, accept)

    async def stream_or_call(
        self, request: CacheRequest, open_stream: ProviderStream
    ) -> AsyncGenerator[str, None]:
        """The text chunks of the cached answer, or of the provider's stream (stored when it
        completes). The same path as ``get_or_call``: a stream concurrent with an identical
        stream or call in this event loop waits for it and replays its chunks."""
        if self.policy.reads:
            response = self.lookup(request)
            if response is not None:
                self.manager.counters.record_hit(request, response)
                for chunk in replayed_chunks(response):
                    yield chunk
                return
            if self.policy.replay:
                self.manager.counters.record_miss(request, None)
                raise self.replay_miss(request)
        async with contextlib.aclosing(stream_once(self, request, open_stream)) as chunks:
            async for chunk in chunks:  # (closed with this stream: a break ends its flight now)
                yield chunk

    def recheck(self, request: CacheRequest, accept: Accept | None) -> dict[str, Any] | None:
        """Read the store again within one call: a bad entry is counted once per call; one
        ``accept`` refuses is none."""
        path = self.manager.store.location(request.provider, request.model_id, request.key)
        stored = self._read_store(request, path, time.time(), count=False)
        return stored if stored is None or accept is None or accept(stored) else None

    def lookup(self, request: CacheRequest) -> dict[str, Any] | None:
        """The fresh stored response of ``request`` (a copy of the caller's own), or None (a
        miss). Never raises, except in replay mode for an entry that cannot be used."""
        manager = self.manager
        path = manager.store.location(request.provider, request.model_id, request.key)
        now = time.time()
        if manager.store.validates_cheaply:
            remembered = manager.memory.recall(
                request.key,
                path,
                manager.store.version,
                lambda meta: self._may_open(meta) and self.policy.is_fresh(meta, now),
            )
            if remembered is not None:
                if now - remembered.touched_at > USE_RESOLUTION_S:
                    remembered.touched_at = now
                    manager.store.touch(path, remembered.version, time.time_ns())
                manager.used_keys.add(request.key)
                return own_copy(remembered.payload["response"])
        return self._read_store(request, path, now)

    def _may_open(self, meta: EntryMeta) -> bool:
        """Whether this binding may serve an entry: it holds its key, and an encrypting cache
        takes sealed entries only (a memory hit obeys what a read of the store would)."""
        if not meta.sealed:
            return not self.config.encrypt
        return self.keyring is not None and meta.key_fingerprint in self.keyring.fernets

    def _read(
        self, request: CacheRequest, path: str, fresh: Callable[[EntryMeta], bool] | None = None
    ) -> StoredEntry | BadEntry | None:
        """The entry at ``path`` as this binding may use it for ``request`` (the one reader)."""
        return read_entry(
            self.manager.store,
            path,
            self.keyring,
            where=Where(request.key, request.provider, request.model_id),
            sealed_only=self.config.encrypt,
            fresh=fresh,
            request=request.normalized,
        )

    def _read_store(
        self, request: CacheRequest, path: str, now: float, count: bool = True
    ) -> dict[str, Any] | None:
        found = self._read(request, path, lambda meta: self.policy.is_fresh(meta, now))
        if found is None:
            return None
        if isinstance(found, BadEntry):
            self._refuse(request, found, count)
            return None
        payload = found.payload
        assert payload is not None  # (read with its payload)
        manager = self.manager
        manager.used_keys.add(request.key)  # (reading it marked it as used for LRU eviction)
        if manager.store.validates_cheaply and manager.memory.read_again(request.key):
            manager.memory.put(
                request.key, MemoryEntry(path, found.version, found.meta, payload, now)
            )
            return own_copy(payload["response"])
        response: dict[str, Any] = payload["response"]
        return response  # (parsed for this call: already the caller's own)

    def _refuse(self, request: CacheRequest, bad: BadEntry, count: bool) -> None:
        """A miss for an unusable entry: counted and warned once per file; in replay an error
        that names the file (the test that needed it fails with the reason, not a guess)."""
        if self.policy.replay:
            raise replay_error(request, bad, self.config.key_env, self.manager.store.describe())
        if bad.kind == "unavailable":
            return  # the store has reported it (once per outage); no entry was looked at
        self.manager.counters.corrupt += count
        if bad.kind in ("no key", "unknown key"):
            self.manager.warn_once(
                f"key:{bad.fingerprint}",
                "cache entries sealed with key %s cannot be read (%s); treating them as misses",
                bad.fingerprint,
                bad.reason,
            )
        elif bad.kind == "plaintext":
            self.manager.warn_once(f"bad:{bad.location}", _PLAINTEXT_REFUSED, bad.location)
        else:
            message = "ignoring unusable cache entry %s: %s"
            self.manager.warn_once(f"bad:{bad.location}", message, bad.location, bad.reason)

    def save(self, request: CacheRequest, response: Mapping[str, Any]) -> bool:
        """Store an answer if the policy writes and it is cacheable; never raises on I/O."""
        if not self.policy.writes or not is_cacheable(response):
            return False
        self.manager.used_keys.add(request.key)
        if self.policy.mode == "refresh" and self._stored_answer_is(request, response):
            return False  # re-recording the same answer leaves the file (and git) untouched
        now = time.time()
        meta = EntryMeta(
            key=request.key,
            provider=request.provider,
            model_id=request.model_id,
            created_at=now,
            expires_at=self.policy.expires_at(now),
        )
        payload = {"request": dict(request.normalized), "response": own_copy(dict(response))}
        path = self.manager.store.location(request.provider, request.model_id, request.key)
        try:
            data = encode_entry(meta, payload, self._write_keyring)
            version = self.manager.store.write(path, data, meta.expires_at)
        except (OSError, ValueError, TypeError) as exc:
            if not isinstance(exc, StoreUnavailableError):  # that one the store has reported
                self.manager.warn_once(f"write:{type(exc).__name__}", "cache write failed: %s", exc)
            return False
        if self._write_keyring is not None:
            meta = meta._replace(encryption=SCHEME, key_fingerprint=self._write_keyring.primary)
        if self.manager.store.validates_cheaply:
            self.manager.memory.put(request.key, MemoryEntry(path, version, meta, payload, now))
        self.manager.note_write(len(data))
        self.manager.counters.writes += 1
        return True

    def _stored_answer_is(self, request: CacheRequest, response: Mapping[str, Any]) -> bool:
        """Whether the entry in the store already holds exactly this answer, sealed as we would."""
        path = self.manager.store.location(request.provider, request.model_id, request.key)
        found = self._read(request, path)
        if not isinstance(found, StoredEntry) or found.payload is None:
            return False
        primary = self._write_keyring.primary if self._write_keyring else ""
        return found.meta.key_fingerprint == primary and found.payload["response"] == dict(response)
