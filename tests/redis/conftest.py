"""Fixtures for the Redis tests: a real ``redis-server`` on a free loopback port.

The session server is started once (``--save '' --appendonly no``, ``KEYS`` disabled) and every
test gets its own key prefix, so tests never see each other's entries. Tests that kill or pause
a server get one of their own (``own_redis``). Without ``redis-server`` on PATH the tests are
skipped with the reason, except when ``CI`` is set: there a missing server is a failure, so CI
can never silently skip them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import redis
except ImportError:  # the package is in the `redis` and `all` extras that CI installs
    if os.environ.get("CI"):
        raise
    collect_ignore_glob = ["test_*.py"]
else:
    from _redis_support import (
        Backend,
        RedisServer,
        SentinelSetup,
        ThreeMasterCluster,
        redis_server_binary,
    )

    from spark.cache.ledger import close_all_ledgers as _flush_all

MISSING = (
    "redis-server is not on PATH: install it (apt-get install redis-server) to run the Redis "
    "backend tests against a real server"
)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server executable; skip without it (fail when ``CI`` is set)."""
    binary = redis_server_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING} (CI is set: the Redis tests must run, not be skipped)")
        pytest.skip(MISSING)
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """One server for the whole session."""
    server = RedisServer(redis_binary).start()
    yield server
    _flush_all()  # the ledgers' counts, before their Redis goes (else: at exit, with warnings)
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreeMasterCluster]:
    """A 3-master Redis Cluster for the whole session (no node of it is ever killed)."""
    cluster = ThreeMasterCluster(redis_binary, tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    _flush_all()
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SentinelSetup]:
    """A master, a replica and a Sentinel for the whole session (never failed over)."""
    setup = SentinelSetup(redis_binary, tmp_path_factory.mktemp("sentinel")).start()
    yield setup
    _flush_all()
    setup.stop()


@pytest.fixture
def own_redis(redis_binary: str) -> Iterator[RedisServer]:
    """A server of this test's own, to kill or pause."""
    server = RedisServer(redis_binary).start()
    yield server
    _flush_all()
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client to the session server, to look at what Spark stored."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(params=["disk", "redis", "tiered", "cluster", "sentinel"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> Iterator[Backend]:
    """The same contract runs on each store: disk, Redis, Redis behind a local disk tier, a
    3-master Redis Cluster, and a Redis found through Sentinel."""
    kind: str = request.param
    if kind == "disk":
        yield Backend(kind, tmp_path, "", prefix)
        return
    if kind == "cluster":
        cluster: ThreeMasterCluster = request.getfixturevalue("redis_cluster")
        client = cluster.client()
        yield Backend(kind, tmp_path, cluster.url, prefix, client)
        client.close()
        return
    if kind == "sentinel":
        setup: SentinelSetup = request.getfixturevalue("redis_sentinel")
        direct = redis.Redis(port=setup.master.port)
        yield Backend(kind, tmp_path, setup.address, prefix, direct)
        direct.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    yield Backend(kind, tmp_path, server.url, prefix, request.getfixturevalue("raw"))
