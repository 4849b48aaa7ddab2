"""The three sums on every store (disk, Redis, tiered, Cluster, Sentinel): what paid calls cost,
what hits saved, what the provider's prompt caching took off the paid calls; a Redis ledger
written before the prompt-cache sum existed still reads (docs/costs.md)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from _redis_support import Backend

from spark.cache import CacheConfig, CacheManager
from spark.cache.ledger import close_all_ledgers


class PricedProvider:
    """The provider side of ``get_or_call``: each answer with a cost and a prompt-cache
    saving, as the model layer stores them."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"text": f"answer {self.calls}", "cost_usd": 0.25, "provider_cache_saved_usd": 0.5}


async def test_the_three_sums_on_every_store(backend: Backend) -> None:
    config = backend.config()
    bound = CacheManager.get_instance(config=config).bind(config)
    provider = PricedProvider()
    for prompt in ("one", "one", "two", "one"):
        await bound.get_or_call(bound.chat_request("openai", "gpt-4o", prompt), provider)

    stats = bound.manager.get_stats()

    assert provider.calls == 2
    assert stats["spent_cost_usd"] == pytest.approx(0.5)  # two paid calls
    assert stats["saved_cost_usd"] == pytest.approx(0.5)  # two hits of a $0.25 answer
    assert stats["provider_cache_saved_usd"] == pytest.approx(1.0)  # the paid calls only
    everyone = stats["all_processes"]
    assert everyone["spent_cost_usd"] == pytest.approx(0.5)
    assert everyone["saved_cost_usd"] == pytest.approx(0.5)
    assert everyone["provider_cache_saved_usd"] == pytest.approx(1.0)


async def test_a_redis_ledger_without_the_new_counter_still_reads(
    redis_server: Any, raw: redis.Redis, prefix: str, tmp_path: Any
) -> None:
    config = CacheConfig(
        enabled=True, cache_dir=tmp_path / "c", backend="redis", url=redis_server.url, prefix=prefix
    )
    day = f"{prefix}ledger:day:2026-01-02"
    raw.sadd(f"{prefix}ledger:days", "2026-01-02")  # as an older Spark wrote it
    raw.hset(day, mapping={"hits\topenai\tgpt-4o": 3, "saved\topenai\tgpt-4o": "0.75"})
    bound = CacheManager.get_instance(config=config).bind(config)

    before = bound.manager.get_stats()["all_processes"]
    await bound.get_or_call(bound.chat_request("openai", "gpt-4o", "new"), PricedProvider())
    close_all_ledgers()
    after = bound.manager.get_stats()["all_processes"]

    assert (before["hits"], before["provider_cache_saved_usd"]) == (3, 0.0)
    assert before["saved_cost_usd"] == pytest.approx(0.75)
    assert (after["hits"], after["misses"]) == (3, 1)
    assert after["spent_cost_usd"] == pytest.approx(0.25)
    assert after["provider_cache_saved_usd"] == pytest.approx(0.5)
