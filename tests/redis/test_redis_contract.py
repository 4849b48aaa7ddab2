"""The cache contract, run unchanged on every store: disk, Redis, and Redis behind a disk tier.

Each test gets a ``backend`` (see conftest.py): a real directory under ``tmp_path``, or a real
``redis-server`` with a key prefix of the test's own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from _redis_support import Backend

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache
from spark.errors import CacheMissError

LONG_MODEL = "ft:gpt-4o:" + "x" * 200  # hashed in its folder name: stats read its metadata


class Provider:
    """The provider side of ``get_or_call``: counts calls (the cache is under test)."""

    def __init__(self, text: str = "Paris.", cost: float = 0.002, delay: float = 0.0) -> None:
        self.calls = 0
        self.text = text
        self.cost = cost
        self.delay = delay

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"text": f"{self.text} #{self.calls}", "cost_usd": self.cost}


def bound_of(config: CacheConfig) -> BoundCache:
    """The process-wide manager of ``config``'s cache, bound to ``config``."""
    return CacheManager.get_instance(config=config).bind(config)


async def ask(
    bound: BoundCache,
    prompt: str,
    call: Provider,
    *,
    to: str = "openai",
    model: str = "gpt-4o",
    **kw: Any,
) -> Any:
    request = bound.chat_request(to, model, prompt, **kw)
    return await bound.get_or_call(request, call)


async def test_hit_after_miss(backend: Backend) -> None:
    bound = bound_of(backend.config())
    provider = Provider()
    first = await ask(bound, "Capital of France?", provider)
    second = await ask(bound, "Capital of France?", provider)
    assert (first.cached, second.cached) == (False, True)
    assert second.response["text"] == first.response["text"] == "Paris. #1"
    assert provider.calls == 1
    stats = bound.manager.get_stats()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 0.5)
    assert stats["saved_cost_usd"] == pytest.approx(0.002)


async def test_concurrent_identical_misses_make_one_call(backend: Backend) -> None:
    bound = bound_of(backend.config())
    provider = Provider(delay=0.05)
    results = await asyncio.gather(*(ask(bound, "same", provider) for _ in range(5)))
    assert provider.calls == 1
    assert sorted(r.cached for r in results) == [False, True, True, True, True]


async def test_generated_key_is_the_stored_key(backend: Backend) -> None:
    config = backend.config()
    manager = CacheManager.get_instance(config=config)
    result = await ask(manager.bind(config), "Hi", Provider(), temperature=0.2)
    key = manager.generate_cache_key("openai", "gpt-4o", "Hi", temperature=0.2)
    assert key == result.key
    assert manager.has_entry(key)
    assert manager.store.find(key) == manager.store.location("openai", "gpt-4o", key)
    assert manager.remove_entry(key)
    assert not manager.has_entry(key)
    assert not manager.remove_entry(key)


async def test_ttl_expires_the_entry(backend: Backend) -> None:
    bound = bound_of(backend.config(ttl_seconds=0.4))
    provider = Provider()
    await ask(bound, "short-lived", provider)
    assert (await ask(bound, "short-lived", provider)).cached
    if backend.client is not None:  # the TTL is Redis's own, set from expires_at
        [name] = backend.entry_names(bound.manager.config)
        assert 0 < backend.client.pttl(name) <= 400
    await asyncio.sleep(0.5)
    assert not (await ask(bound, "short-lived", provider)).cached
    assert provider.calls == 2


async def test_ttl_zero_sets_no_expiry(backend: Backend) -> None:
    bound = bound_of(backend.config(ttl_seconds=0))
    await ask(bound, "forever", Provider())
    if backend.client is not None:
        [name] = backend.entry_names(bound.manager.config)
        assert backend.client.pttl(name) == -1  # exists, no expiry
    assert (await ask(bound, "forever", Provider())).cached


async def test_read_only_and_refresh_modes(backend: Backend) -> None:
    config = backend.config()
    provider = Provider()
    assert not (await ask(bound_of(replace(config, mode="read_only")), "q", provider)).cached
    assert backend.stored_values(config) == []
    await ask(bound_of(config), "q", provider)  # stored
    refreshed = await ask(bound_of(replace(config, mode="refresh")), "q", provider)
    assert not refreshed.cached
    again = await ask(bound_of(config), "q", provider)
    assert again.cached
    assert again.response["text"] == refreshed.response["text"] == "Paris. #3"


async def test_replay_miss_names_the_nearest_entry_and_the_difference(backend: Backend) -> None:
    config = backend.config()
    await ask(bound_of(config), "Weather?", Provider(), temperature=0.2)
    replay = bound_of(replace(config, mode="replay"))
    provider = Provider()
    assert (await ask(replay, "Weather?", provider, temperature=0.2)).cached
    with pytest.raises(CacheMissError) as caught:
        await ask(replay, "Weather?", provider, temperature=0.7)
    message = str(caught.value)
    assert "replay mode: no cache entry for openai/gpt-4o" in message
    assert "Nearest stored entry" in message
    assert "body.temperature: 0.2 -> 0.7" in message
    assert provider.calls == 0


async def test_encrypted_entries_hold_no_plaintext(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = backend.config(encrypt=True)
    bound = bound_of(config)
    await ask(bound, "the tangerine prompt", Provider("the zeppelin answer"))
    values = backend.stored_values(config)
    assert values
    for value in values:
        assert b'"encryption":"fernet"' in value
        assert b"tangerine" not in value
        assert b"zeppelin" not in value
    fresh = CacheManager(config.resolved_dir, config).bind(config)  # a cold reader decrypts
    hit = await ask(fresh, "the tangerine prompt", Provider())
    assert hit.cached
    assert hit.response["text"] == "the zeppelin answer #1"


async def fill(bound: BoundCache) -> None:
    provider = Provider()
    for prompt in ("a", "b"):
        await ask(bound, prompt, provider)
    await ask(bound, "c", provider, model="gpt-4o-mini")
    await ask(bound, "d", provider, to="bedrock", model="anthropic.claude-3-haiku:0")
    await ask(bound, "e", provider, model=LONG_MODEL)


async def test_stats_by_provider_and_model(backend: Backend) -> None:
    bound = bound_of(backend.config())
    await fill(bound)
    stats = bound.manager.get_stats()
    assert stats["total_entries"] == 5
    assert stats["total_size_bytes"] > 5 * 200
    assert stats["entries_by_provider"] == {"openai": 4, "bedrock": 1}
    assert stats["entries_by_model"] == {
        "openai": {"gpt-4o": 2, "gpt-4o-mini": 1, LONG_MODEL: 1},
        "bedrock": {"anthropic.claude-3-haiku:0": 1},
    }
    assert stats["all_processes"]["misses"] == 5


async def test_clear_provider_model_and_all(backend: Backend) -> None:
    bound = bound_of(backend.config())
    manager = bound.manager
    await fill(bound)
    assert manager.clear_model("openai", "gpt-4o-mini") == 1
    assert manager.clear_provider("bedrock") == 1
    assert manager.get_stats()["entries_by_model"] == {"openai": {"gpt-4o": 2, LONG_MODEL: 1}}
    assert manager.clear_all() == 3
    assert manager.get_stats()["total_entries"] == 0
    assert backend.stored_values(manager.config) == []
    provider = Provider()
    assert not (await ask(bound, "a", provider)).cached  # nothing left anywhere to serve
    assert provider.calls == 1


async def test_cleanup_expired_counts_what_it_removed(backend: Backend) -> None:
    config = backend.config(ttl_seconds=0.3)
    bound = bound_of(config)
    await ask(bound, "x", Provider())
    await ask(bound, "y", Provider())
    await ask(bound_of(replace(config, ttl_seconds=0)), "kept", Provider())
    await asyncio.sleep(0.45)
    assert bound.manager.cleanup_expired() == 2
    assert bound.manager.get_stats()["total_entries"] == 1
    assert bound.manager.cleanup_expired() == 0


async def test_corrupt_value_is_a_counted_miss_then_replaced(backend: Backend) -> None:
    bound = bound_of(backend.config())
    manager = bound.manager
    provider = Provider()
    first = await ask(bound, "q", provider)
    path = manager.store.location("openai", "gpt-4o", first.key)
    manager.store.write(path, b'{"format": 1, "key": "truncated...')
    again = await ask(bound, "q", provider)
    assert not again.cached
    assert provider.calls == 2
    assert manager.get_stats()["corrupt_entries_seen"] == 1
    assert (await ask(bound, "q", provider)).cached


async def test_two_caches_do_not_see_each_other(backend: Backend) -> None:
    main, other = backend.config(), backend.config(other=True)
    assert CacheManager.get_instance(config=main) is not CacheManager.get_instance(config=other)
    await ask(bound_of(main), "shared question", Provider())
    provider = Provider()
    assert not (await ask(bound_of(other), "shared question", provider)).cached
    assert CacheManager.get_instance(config=other).clear_all() == 1
    assert (await ask(bound_of(main), "shared question", provider)).cached
    assert CacheManager.get_instance(config=main).get_stats()["total_entries"] == 1


def test_get_instance_is_one_manager_per_cache(backend: Backend) -> None:
    config = backend.config()
    manager = CacheManager.get_instance(config=config)
    assert CacheManager.get_instance(config=replace(config, ttl_seconds=5)) is manager
    assert manager.cache_dir == config.resolved_dir
    assert manager.get_stats()["store"] == manager.store.describe()


async def test_a_cold_manager_reads_what_another_wrote(backend: Backend) -> None:
    config = backend.config()
    await ask(bound_of(config), "q", Provider())
    cold = CacheManager(config.resolved_dir, config)  # as another process would
    started = time.perf_counter()
    assert (await ask(cold.bind(config), "q", Provider())).cached
    assert time.perf_counter() - started < 1.0
