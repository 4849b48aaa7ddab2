"""``CacheManager``: the process-wide cache of one directory or one Redis prefix (DESIGN §1).

One manager per directory, or per Redis URL and key prefix (``get_instance``); each model binds
it to its own rules (``bind(config)`` -> ``BoundCache``), so models with different TTLs or modes
share one cache. The manager owns what is per cache: the store, the memory tier, counters,
single-flight slots and the size limit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from spark.cache.bound import BoundCache, CacheRequest
from spark.cache.claims import Claims
from spark.cache.config import CacheConfig, default_cache_dir
from spark.cache.counters import CacheStatsCounters
from spark.cache.crypto import load_keyring
from spark.cache.flight import SingleFlight
from spark.cache.ledger import Ledger
from spark.cache.ledger.usage import UsageRecord, record_to_prune_by, write_usage_record
from spark.cache.memory import MemoryTier
from spark.cache.misses import CacheResult, Outcome, ProviderCall
from spark.cache.policy import CachePolicy
from spark.cache.reader import StoredEntry, read_entry
from spark.cache.stores import open_store, store_identity
from spark.cache.stores.base import EntryStore, remove_each
from spark.cache.stores.disk import check_provider, quote_model_id
from spark.cache.stores.maintenance import scan_stats
from spark.errors import ConfigError

__all__ = ["CacheManager", "CacheStatsCounters"]

logger = logging.getLogger("spark.cache")
_RESCAN_EVERY_S = 300.0


class CacheManager:
    """The cache of one directory (or Redis prefix), shared by every model of this process that
    uses it. ``cache_dir`` is the directory (of a Redis cache: its local tier and run record)."""

    _instances: ClassVar[dict[Path | tuple[str, ...], CacheManager]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        config: CacheConfig | None = None,
        store: EntryStore | None = None,
    ):
        base = config or CacheConfig(enabled=True)
        self.cache_dir: Path = Path(cache_dir or base.resolved_dir).expanduser().absolute()
        self.config: CacheConfig = replace(base, enabled=True, dir=self.cache_dir)
        self.store: EntryStore = store or open_store(self.config, self.cache_dir)
        self.memory = MemoryTier(self.config.memory_max_entries, self.config.memory_max_bytes)
        self.counters = CacheStatsCounters(
            Ledger(self.store.ledger_sink(), may_create=self._writes_entries)
        )
        self.flight: SingleFlight[Outcome] = SingleFlight()
        self.claims = Claims(self.store, self.config.lock_seconds)
        self.used_keys: set[str] = set()  # keys this process read or wrote (for prune --unused)
        self.max_bytes = int(self.config.max_cache_size_mb * 1024 * 1024)
        self._bound: dict[tuple[CacheConfig, str | None], BoundCache] = {}
        self._warned: set[str] = set()
        self._size_lock = threading.Lock()
        # Size estimate = bytes the last scan left + bytes this process wrote since it began.
        self._scan_left: int | None = None
        self._scan_written = 0
        self._written = 0
        self._last_scan = 0.0
        self._maintenance: threading.Thread | None = None

    # -- instances ------------------------------------------------------------------------

    @classmethod
    def get_instance(
        cls, cache_dir: str | Path | CacheConfig | None = None, config: CacheConfig | None = None
    ) -> CacheManager:
        """The process-wide manager of ``cache_dir`` (the default directory when None), or of a
        Redis ``config``'s URL and key prefix. ``get_instance(config)`` (a ``CacheConfig`` as the
        only argument, the original framework's call) is the manager of that config's cache."""
        if isinstance(cache_dir, CacheConfig):
            if config is not None:
                raise ConfigError("get_instance takes one CacheConfig: give it once")
            cache_dir, config = None, cache_dir
        if cache_dir is None and config is not None:
            cache_dir = config.resolved_dir
        path = Path(cache_dir or default_cache_dir()).expanduser().absolute()
        identity = path if config is None else store_identity(config, path)
        with cls._instances_lock:
            manager = cls._instances.get(identity)
            if manager is None:
                manager = cls(path, config)
                cls._instances[identity] = manager
            elif config is not None:
                manager.max_bytes = min(manager.max_bytes, int(config.max_cache_size_mb * 2**20))
            return manager

    @classmethod
    def instances(cls) -> list[CacheManager]:
        """Every process-wide manager made so far (one per directory or Redis prefix)."""
        with cls._instances_lock:
            return list(cls._instances.values())

    @classmethod
    def reset_instances(cls) -> None:
        """Forget every process-wide manager (for tests and long-lived tools)."""
        with cls._instances_lock:
            cls._instances.clear()

    @classmethod
    def reset_instance(cls) -> None:
        """``reset_instances()``, by the original framework's name."""
        cls.reset_instances()

    def bind(self, config: CacheConfig | None = None) -> BoundCache:
        """This directory used with ``config``'s rules; loads its keys (``EncryptionKeyError``
        when it encrypts and has none)."""
        rules = self.config if config is None else config
        env_value = os.environ.get(rules.key_env)
        bound = self._bound.get((rules, env_value))
        if bound is None:
            required = rules.encrypt and rules.enabled  # a cache that is off needs no key
            keyring = load_keyring(rules.key_env, rules.key_file, required=required)
            bound = BoundCache(self, rules, keyring)
            self._bound[(rules, env_value)] = bound
        return bound

    def _writes_entries(self) -> bool:
        """Whether this process uses the cache with rules that store entries (a cache only
        read — replay, read_only — makes no ledger where there is none)."""
        return any(bound.policy.writes for bound in list(self._bound.values()))

    # -- the call path --------------------------------------------------------------------

    def generate_cache_key(
        self,
        provider: str,
        model_id: str,
        messages: str | Sequence[Mapping[str, Any]],
        **kwargs: Any,
    ) -> str:
        """The key that ``model.get_text(messages, **kwargs)`` reads and writes."""
        return self.bind().chat_request(provider, model_id, messages, **kwargs).key

    async def get_or_call(
        self, request: CacheRequest, call: ProviderCall, config: CacheConfig | None = None
    ) -> CacheResult:
        """The cached response of ``request``, or ``await call()``'s (stored per the rules)."""
        return await self.bind(config).get_or_call(request, call)

    # -- entries --------------------------------------------------------------------------

    def has_entry(self, key: str) -> bool:
        """True when ``key`` has a readable entry whose ``expires_at`` has not passed."""
        path = self._path_of(key)
        if path is None:
            return False
        now = time.time()
        found = read_entry(self.store, path, with_payload=False)
        return (
            isinstance(found, StoredEntry)
            and found.meta.key == key
            and not found.meta.is_expired(now)
        )

    def remove_entry(self, key: str) -> bool:
        """Delete the entry of ``key``; False when there was none."""
        path = self._path_of(key)
        self.memory.discard(key)
        return path is not None and self.store.remove(path)

    def _path_of(self, key: str) -> str | None:
        remembered = self.memory.get(key)
        if remembered is not None and self.store.version(remembered.location) is not None:
            return remembered.location
        return self.store.find(key)

    # -- whole directory ------------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        """Entries and bytes on disk by provider and model, and this process's counters.

        Folders unchanged since the last scan are not listed again (the folder summary, kept
        by a cache that writes: docs/caching.md, "Statistics").
        """
        writes = (
            self._writes_entries() if self._bound else CachePolicy.from_config(self.config).writes
        )
        stats = scan_stats(self.store, keep_summary=writes).as_dict()
        counters = self.counters
        lookups = counters.hits + counters.misses
        stats.update(
            cache_dir=str(self.cache_dir),
            store=self.store.describe(),
            hits=counters.hits,
            misses=counters.misses,
            corrupt_entries_seen=counters.corrupt,
            writes=counters.writes,
            bypasses=counters.bypasses,
            hit_rate=counters.hits / lookups if lookups else 0.0,
            saved_cost_usd=round(counters.saved_cost_usd, 10),
            spent_cost_usd=round(counters.spent_cost_usd, 10),
            provider_cache_saved_usd=round(counters.provider_cache_saved_usd, 10),
            max_cache_size_mb=self.max_bytes / 2**20,
            all_processes=self._ledger_totals(),
        )
        return stats

    def _ledger_totals(self) -> dict[str, Any]:
        """Hits, misses and dollars of every process that used this directory (the ledger)."""
        rows = self.counters.ledger.rows()
        hits, misses = sum(r.hits for r in rows), sum(r.misses for r in rows)
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
            "saved_cost_usd": round(sum(r.saved_usd for r in rows), 10),
            "spent_cost_usd": round(sum(r.spent_usd for r in rows), 10),
            "provider_cache_saved_usd": round(sum(r.provider_cache_saved_usd for r in rows), 10),
            "by_model": {
                f"{r.provider}/{r.model_id}": {
                    "hits": r.hits,
                    "misses": r.misses,
                    "saved_cost_usd": round(r.saved_usd, 10),
                    "spent_cost_usd": round(r.spent_usd, 10),
                    "provider_cache_saved_usd": round(r.provider_cache_saved_usd, 10),
                }
                for r in rows
            },
        }

    def clear_all(self) -> int:
        """Delete every entry (the directory stays); returns how many were removed."""
        return self._clear(None, None)

    def clear_provider(self, provider: str) -> int:
        """Delete every entry of one provider."""
        return self._clear(check_provider(provider), None)

    def clear_model(self, provider: str, model_id: str) -> int:
        """Delete every entry of one provider's model."""
        return self._clear(check_provider(provider), quote_model_id(model_id))

    def _clear(self, provider: str | None, model_slot: str | None) -> int:
        removed = remove_each(
            self.store, (e.location for e in self.store.walk(provider, model_slot))
        )
        self.memory.clear()
        self.store.after_clear(provider, model_slot)
        with self._size_lock:
            self._scan_left = None
        return removed

    def write_usage_record(self, *, partial: bool = False) -> Path:
        """Write the keys this process used to ``{cache_dir}/.spark-last-run.json``.

        ``prune_unused()`` (``spark cache prune --unused``) then removes every other entry, so a
        committed cache does not grow forever. The file is per machine and ignored by git; a
        ``partial`` run (part of the suite) adds its keys to it."""
        return write_usage_record(self.cache_dir, self.used_keys, partial=partial)

    def prune_unused(self) -> int:
        """Delete entries the last recorded run did not use; returns how many were removed.

        An entry recorded after that run finished (by a later run, or by a teammate: the record
        is per machine) is kept: the record says nothing about it. ``CacheError`` when no run
        of the whole suite was recorded (pruning everything is never a default)."""
        record = record_to_prune_by(self.cache_dir)
        unused = [e.location for e in self.store.walk() if e.key not in record.keys]
        removed = remove_each(self.store, (u for u in unused if not self._newer(u, record)))
        self.memory.clear()
        return removed

    def _newer(self, location: str, record: UsageRecord) -> bool:
        if record.finished_at is None:
            return False
        found = read_entry(self.store, location, with_payload=False, touch=False)
        return isinstance(found, StoredEntry) and found.meta.created_at > record.finished_at

    def cleanup_expired(self) -> int:
        """Delete expired entries and crashed writers' temp files; returns entries removed."""
        return self.store.cleanup_expired()

    def enforce_size_limit(self) -> int:
        """Evict least recently used entries while the directory exceeds ``max_cache_size_mb``."""
        with self._size_lock:
            written_before = self._written
        evicted, left = self.store.evict(self.max_bytes)
        with self._size_lock:  # writes made during the scan stay in the estimate
            self._scan_left, self._scan_written = left, written_before
            self._last_scan = time.monotonic()
        if evicted:
            logger.info("evicted %d least recently used entries from %s", evicted, self.cache_dir)
        return evicted

    def _size_estimate(self) -> int | None:
        if self._scan_left is None:
            return None
        return self._scan_left + self._written - self._scan_written

    def note_write(self, size: int) -> None:
        """Account a write; starts a background size check when the limit may be exceeded."""
        if not self.store.evicts:
            return  # the server enforces its own memory limit
        with self._size_lock:
            self._written += size
            estimate = self._size_estimate()
            due = (
                estimate is None
                or estimate > self.max_bytes
                or time.monotonic() - self._last_scan > _RESCAN_EVERY_S
            )
            if not due or (self._maintenance is not None and self._maintenance.is_alive()):
                return
            self._last_scan = time.monotonic()
            self._maintenance = threading.Thread(
                target=self._run_maintenance, name="spark-cache-size", daemon=True
            )
        self._maintenance.start()

    def wait_for_maintenance(self, timeout: float | None = None) -> None:
        """Block until a background size check (if any) has finished."""
        thread = self._maintenance
        if thread is not None:
            thread.join(timeout)

    def _run_maintenance(self) -> None:
        try:
            for _ in range(3):  # again if writes during the scan pushed it over the limit
                self.enforce_size_limit()
                with self._size_lock:
                    estimate = self._size_estimate()
                if estimate is None or estimate <= self.max_bytes:
                    break
        except OSError as exc:
            self.warn_once("maintenance", "cache size check failed: %s", exc)

    def warn_once(self, topic: str, message: str, *args: Any) -> None:
        """Log a warning the first time a topic comes up in this manager."""
        if topic not in self._warned:
            self._warned.add(topic)
            logger.warning(message, *args)
