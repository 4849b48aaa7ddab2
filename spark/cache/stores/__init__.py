"""Which store a ``CacheConfig`` names, built on demand: disk, Redis, or Redis behind a disk tier.

The ``redis`` package is imported here, lazily, only when a Redis backend is configured, so
``import spark`` and every disk cache work without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from spark.cache.config import CacheConfig
from spark.cache.stores.base import EntryStore
from spark.cache.stores.disk import DiskStore
from spark.cache.urls import redact_url
from spark.errors import ConfigError

if TYPE_CHECKING:
    from spark.cache.stores.redis import RedisStore

__all__ = ["INSTALL_HINT", "open_redis_store", "open_store", "store_identity"]

INSTALL_HINT = "pip install redis (in a Spark checkout: pip install -e '.[redis]')"


def store_identity(config: CacheConfig, cache_dir: Path) -> Path | tuple[str, ...]:
    """What makes two configs share one process-wide manager: the directory of a disk cache;
    the server(s) (password hidden), key prefix and local tier of a Redis cache."""
    if config.backend != "redis":
        return cache_dir
    local = str(cache_dir) if config.local_tier else ""
    server = redact_url(str(config.url))
    if config.cluster or config.sentinel:
        server = f"{server} cluster={config.cluster} sentinel={config.sentinel}/{config.service}"
    return ("redis", server, config.prefix, local)


def open_store(config: CacheConfig, cache_dir: Path) -> EntryStore:
    """The store of ``config``: a ``DiskStore`` of ``cache_dir``, a ``RedisStore``, or with
    ``local_tier`` a ``TieredStore`` of both."""
    if config.backend != "redis":
        return DiskStore(cache_dir)
    remote = open_redis_store(config)
    if not config.local_tier:
        return remote
    from spark.cache.stores.tiered import TieredStore

    return TieredStore(DiskStore(cache_dir), remote)


def open_redis_store(config: CacheConfig) -> RedisStore:
    """A ``RedisStore`` for ``config`` (no connection is made yet).

    ``ConfigError`` when the ``redis`` package is missing (with the install command) or when
    ``password_env`` names a variable that is not set.
    """
    try:
        from spark.cache.stores.redis import RedisStore
        from spark.cache.stores.redis_connect import connector, where
    except ModuleNotFoundError as exc:
        if exc.name != "redis":
            raise
        raise ConfigError(f'backend "redis" needs the redis package: {INSTALL_HINT}') from exc
    password = None
    if config.password_env:
        password = os.environ.get(config.password_env)
        if not password:
            raise ConfigError(
                f"the Redis password variable {config.password_env} (password_env) is not set"
            )
    return RedisStore(
        connector(config, password),
        url=where(config),
        prefix=config.prefix,
        cooldown_s=config.cooldown_seconds,
        lock_s=config.lock_seconds,
        cluster=config.cluster,
    )
