"""Redis down, hung or refusing writes: calls still answer (misses), with one warning, and once
the circuit is open a call pays nothing for the dead server; in replay mode it is an error.

Each test kills or pauses a ``redis-server`` of its own (a real process, real signals).
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import pytest
import redis
from _redis_support import RedisServer

from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache
from spark.errors import CacheError


class Provider:
    """Answers at once and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"text": f"answer #{self.calls}", "cost_usd": 0.001}


def bound_for(server: RedisServer, prefix: str, **changes: Any) -> BoundCache:
    changes.setdefault("cooldown_seconds", 60)
    config = CacheConfig(enabled=True, backend="redis", url=server.url, prefix=prefix, **changes)
    return CacheManager.get_instance(config=config).bind(config)


async def ask(bound: BoundCache, prompt: str, provider: Provider) -> Any:
    return await bound.get_or_call(bound.chat_request("openai", "gpt-4o", prompt), provider)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "spark.cache" and r.levelno >= logging.WARNING
    ]


async def timed(bound: BoundCache, prompts: list[str], provider: Provider) -> list[float]:
    durations = []
    for prompt in prompts:
        started = time.perf_counter()
        result = await ask(bound, prompt, provider)
        durations.append(time.perf_counter() - started)
        assert not result.cached
    return durations


async def test_dead_redis_answers_warns_once_and_then_costs_nothing(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bound = bound_for(own_redis, prefix)
    provider = Provider()
    await ask(bound, "stored before the crash", provider)
    assert (await ask(bound, "stored before the crash", provider)).cached
    own_redis.kill()
    caplog.set_level(logging.INFO, "spark.cache")
    first = await ask(bound, "stored before the crash", provider)
    assert not first.cached, "the entry is out of reach: a miss, answered by the provider"
    assert first.response["text"] == "answer #2"
    durations = await timed(bound, [f"question {n}" for n in range(50)], provider)
    assert provider.calls == 52
    assert statistics.median(durations) < 0.005
    [warning] = warnings_of(caplog)
    assert "is unavailable" in warning
    assert "retrying in 60 s" in warning
    assert bound.manager.counters.misses == 52


async def test_hung_redis_costs_one_timeout_then_nothing(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bound = bound_for(own_redis, prefix, timeout_ms=100)
    provider = Provider()
    await ask(bound, "warm the connection", provider)
    own_redis.pause()
    try:
        started = time.perf_counter()
        await ask(bound, "first call to a hung server", provider)
        first = time.perf_counter() - started
        durations = await timed(bound, [f"q{n}" for n in range(30)], provider)
    finally:
        own_redis.resume()
    assert 0.09 < first < 0.5, "one timeout, not one per operation or per retry"
    assert statistics.median(durations) < 0.005
    assert len(warnings_of(caplog)) == 1


async def test_replay_with_redis_down_is_an_error(own_redis: RedisServer, prefix: str) -> None:
    await ask(bound_for(own_redis, prefix), "recorded", Provider())
    replay = bound_for(own_redis, prefix, mode="replay")
    provider = Provider()
    assert (await ask(replay, "recorded", provider)).cached
    own_redis.kill()
    for _ in range(2):  # the first failure, then with the circuit open
        with pytest.raises(CacheError, match="replay: cannot read the cache at redis://"):
            await ask(replay, "recorded", provider)
    assert provider.calls == 0


async def test_circuit_probes_after_the_cooldown_and_recovers(
    own_redis: RedisServer, redis_binary: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "spark.cache")
    bound = bound_for(own_redis, prefix, cooldown_seconds=0.3)
    provider = Provider()
    own_redis.kill()
    await ask(bound, "q", provider)
    restarted = RedisServer(redis_binary, own_redis.port).start()
    try:
        await ask(bound, "q", provider)  # still inside the cool-down: Redis is not tried
        time.sleep(0.35)
        await ask(bound, "q", provider)  # the probe succeeds: stored again
        assert (await ask(bound, "q", provider)).cached
    finally:
        restarted.stop()
    assert provider.calls == 3
    assert any("is reachable again" in r.getMessage() for r in caplog.records)
    assert len(warnings_of(caplog)) == 1


async def test_local_tier_keeps_serving_when_redis_is_down(
    own_redis: RedisServer, prefix: str, tmp_path: Any
) -> None:
    bound = bound_for(own_redis, prefix, local_tier=True, cache_dir=tmp_path / "local")
    provider = Provider()
    await ask(bound, "kept locally", provider)
    own_redis.kill()
    cold = CacheManager(bound.manager.cache_dir, bound.manager.config)  # no memory tier yet
    assert (await ask(cold.bind(bound.config), "kept locally", provider)).cached
    assert not (await ask(cold.bind(bound.config), "never stored", provider)).cached
    assert provider.calls == 2


async def test_a_redis_that_refuses_writes_is_warned_about_once(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write is refused: OOM
    bound = bound_for(own_redis, prefix)
    provider = Provider()
    for _ in range(3):
        assert not (await ask(bound, "q", provider)).cached
    assert provider.calls == 3
    [warning] = warnings_of(caplog)
    assert warning.startswith("cache write failed")
    assert "maxmemory" in warning
    admin.close()
