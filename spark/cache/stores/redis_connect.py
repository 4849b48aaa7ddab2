"""Clients for the three Redis topologies: one server, a Redis Cluster, a master found by Sentinel.

Each client has short socket timeouts (``timeout_ms``, connect and reply) and retries a refused
connection once at once but never a timeout, so a hung server costs one ``timeout_ms``. Building
a cluster client contacts the cluster (it learns which node holds which slot), so ``connector``
returns a function that builds the client: the store calls it behind its circuit breaker, on
first use, never while a model is being built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from spark.cache.config import CacheConfig
from spark.cache.urls import redact_url

__all__ = ["connector", "where"]


def where(config: CacheConfig) -> str:
    """The server(s) of ``config`` for messages (passwords hidden): ``redis://host:6379/0``,
    ``Redis Cluster redis://host:7000/0``, ``Sentinel h1:26379,h2:26379 service 'main'``."""
    if config.sentinel:
        return f"Sentinel {','.join(config.sentinel)} service {config.service!r}"
    url = redact_url(str(config.url))
    return f"Redis Cluster {url}" if config.cluster else url


def _retry() -> Retry:
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def connector(config: CacheConfig, password: str | None) -> Callable[[], Any]:
    """A function that builds the client of ``config`` (``redis.Redis`` or ``RedisCluster``)."""
    timeout = config.timeout_ms / 1000
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": _retry(),
    }
    if password:
        common["password"] = password
    if config.sentinel:
        return lambda: _sentinel_master(config, common)
    url = str(config.url)
    if config.cluster:
        return lambda: RedisCluster.from_url(url, **common)
    return lambda: redis.Redis.from_url(url, **common)


def _sentinel_master(config: CacheConfig, common: dict[str, Any]) -> redis.Redis:
    """The master of ``config.service`` as the Sentinels name it. Each new connection asks them
    again, so after a failover the next connection goes to the new master. ``url``, when set,
    gives the database, user and password (its host is not used)."""
    options = dict(common)
    if config.url:
        given = parse_url(str(config.url))  # type: ignore[no-untyped-call]
        options.update({k: v for k, v in given.items() if k in ("db", "username", "password")})
    addresses = [address.rpartition(":") for address in config.sentinel or ()]
    sentinels = [(host, int(port)) for host, _, port in addresses]
    # The Sentinels' own connections get the same timeouts and the same single retry: redis-py's
    # default (three retries with an exponential backoff) made one unreachable Sentinel set cost
    # seven seconds per attempt, far past ``timeout_ms``.
    timeouts = {k: common[k] for k in ("socket_timeout", "socket_connect_timeout")}
    asking = {**timeouts, "retry": _retry()}
    # (redis-py types Sentinel from 8.2 on; before, these calls are untyped)
    sentinel = Sentinel(sentinels, sentinel_kwargs=asking, **timeouts)  # type: ignore[no-untyped-call,unused-ignore]
    master: redis.Redis = sentinel.master_for(str(config.service), **options)  # type: ignore[no-untyped-call,unused-ignore]
    return master
