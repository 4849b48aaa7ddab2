"""A Redis Cluster of three masters: entries spread over all of them, every command sees every
master, one process's claim holds cluster-wide, and a killed master costs only its own keys
(the circuit breaker is per node): the others keep serving hits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from _redis_support import ThreeMasterCluster
from click.testing import CliRunner

from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache
from spark.cli import cli
from spark.errors import CacheError


class Provider:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"text": f"answer #{self.calls}", "cost_usd": 0.001}


def bound_on(cluster: ThreeMasterCluster, prefix: str, **changes: Any) -> BoundCache:
    config = CacheConfig(
        enabled=True, backend="redis", url=cluster.url, cluster=True, prefix=prefix, **changes
    )
    return CacheManager(None, config).bind(config)


def per_node(cluster: ThreeMasterCluster, prefix: str) -> list[int]:
    """How many entries of ``prefix`` each master holds."""
    counts = []
    for node in cluster.nodes:
        client = redis.Redis(port=node.port)
        counts.append(sum(1 for _ in client.scan_iter(match=f"{prefix}{{??}}e:*", count=1000)))
        client.close()
    return counts


async def ask_all(bound: BoundCache, count: int, provider: Provider) -> list[bool]:
    results = []
    for n in range(count):
        request = bound.chat_request("openai", "gpt-4o", f"question {n}")
        results.append((await bound.get_or_call(request, provider)).cached)
    return results


async def test_entries_spread_over_every_master_and_commands_see_them_all(
    redis_cluster: ThreeMasterCluster,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bound = bound_on(redis_cluster, prefix)
    await ask_all(bound, 60, Provider())
    spread = per_node(redis_cluster, prefix)
    assert sum(spread) == 60
    assert min(spread) >= 5, f"every master holds a share: {spread}"
    assert bound.manager.get_stats()["total_entries"] == 60
    (tmp_path / "spark.toml").write_text(
        f'[cache]\nenabled = true\nbackend = "redis"\nurl = "{redis_cluster.url}"\n'
        f'cluster = true\nprefix = "{prefix}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    def spark(*args: str) -> str:
        result = CliRunner().invoke(cli, ["cache", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "60 entries" in spark("stats").splitlines()[0]
    assert "Redis Cluster redis://127.0.0.1:" in spark("stats")
    assert "60 entries" in spark("ls")
    assert "OK: 60 entries" in spark("verify", "--repair")
    assert "Removed 60 entries" in spark("clear", "--yes")
    assert per_node(redis_cluster, prefix) == [0, 0, 0]


async def test_one_claim_cluster_wide(redis_cluster: ThreeMasterCluster, prefix: str) -> None:
    one, two = bound_on(redis_cluster, prefix), bound_on(redis_cluster, prefix)
    slow, other = Provider(delay=0.3), Provider()
    request = one.chat_request("openai", "gpt-4o", "q")
    first = asyncio.ensure_future(one.get_or_call(request, slow))
    await asyncio.sleep(0.05)
    second = await two.get_or_call(request, other)
    assert (not (await first).cached, second.cached) == (True, True)
    assert (slow.calls, other.calls) == (1, 0)


@pytest.fixture
def own_cluster(redis_binary: str, tmp_path: Path) -> ThreeMasterCluster:
    cluster = ThreeMasterCluster(redis_binary, tmp_path / "own-cluster").start()
    yield cluster  # type: ignore[misc]
    cluster.stop()


async def test_a_killed_master_costs_only_its_own_keys(
    own_cluster: ThreeMasterCluster, prefix: str
) -> None:
    bound = bound_on(own_cluster, prefix, cooldown_seconds=60)
    provider = Provider()
    await ask_all(bound, 60, provider)
    spread = per_node(own_cluster, prefix)
    own_cluster.nodes[1].kill()  # mid-load: the same process keeps asking
    started = time.perf_counter()
    again = await ask_all(bound, 60, provider)
    took = time.perf_counter() - started
    assert sum(again) == spread[0] + spread[2], "the live masters' entries are still hits"
    assert provider.calls == 60 + spread[1], "the dead master's keys are misses, answered"
    assert took < 2.0, "the dead node's breaker opened: its keys fail fast"
    with pytest.raises(CacheError, match=f"127.0.0.1:{own_cluster.nodes[1].port}"):
        bound.manager.get_stats()
