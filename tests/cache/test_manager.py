"""CacheManager's public API (DESIGN §1) on a real directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache
from spark.errors import CacheMissError, ConfigError
from spark.models.cache import CacheConfig as ReexportedConfig
from spark.models.cache import CacheManager as ReexportedManager


class Provider:
    """A fake provider call that counts invocations (the thing under test is the cache)."""

    def __init__(self, text: str = "Paris.", delay: float = 0.0, cost: float = 0.002) -> None:
        self.calls = 0
        self.text = text
        self.delay = delay
        self.cost = cost

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"text": f"{self.text} #{self.calls}", "cost_usd": self.cost}


def bound_cache(tmp_path: Path, **config: Any) -> BoundCache:
    cfg = CacheConfig(enabled=True, cache_dir=tmp_path / "cache", **config)
    return CacheManager.get_instance(cfg.resolved_dir, cfg).bind(cfg)


def test_import_paths_of_the_design() -> None:
    assert ReexportedConfig is CacheConfig
    assert ReexportedManager is CacheManager


def test_get_instance_is_one_manager_per_directory(tmp_path: Path) -> None:
    a = CacheManager.get_instance(tmp_path / "a")
    assert CacheManager.get_instance(tmp_path / "a") is a
    assert CacheManager.get_instance(str(tmp_path / "a")) is a
    assert CacheManager.get_instance(tmp_path / "b") is not a
    assert a.cache_dir == (tmp_path / "a").absolute()


def test_default_directory_honours_spark_cache_dir_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["HOME"])
    assert CacheManager.get_instance().cache_dir == home / ".cache/spark/llm-responses"
    CacheManager.reset_instances()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert CacheManager.get_instance().cache_dir == tmp_path / "xdg/spark/llm-responses"
    CacheManager.reset_instances()
    monkeypatch.setenv("SPARK_CACHE_DIR", str(tmp_path / "explicit"))
    assert CacheManager.get_instance().cache_dir == tmp_path / "explicit"


async def test_hit_after_miss_and_stats(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    provider = Provider()
    request = bound.chat_request("openai", "gpt-4o", "Capital of France?")
    first = await bound.get_or_call(request, provider)
    second = await bound.get_or_call(request, provider)
    assert (first.cached, second.cached) == (False, True)
    assert second.response["text"] == first.response["text"] == "Paris. #1"
    assert provider.calls == 1
    stats = bound.manager.get_stats()
    assert stats["hits"] == 1
    assert stats["misses"] == 1
    assert stats["hit_rate"] == 0.5
    assert stats["saved_cost_usd"] == pytest.approx(0.002)
    assert stats["total_entries"] == 1
    assert stats["entries_by_provider"] == {"openai": 1}
    assert stats["entries_by_model"] == {"openai": {"gpt-4o": 1}}
    size = Path(bound.manager.store.location("openai", "gpt-4o", request.key)).stat().st_size
    assert stats["total_size_bytes"] == size
    assert stats["bytes_by_model"] == {"openai": {"gpt-4o": size}}


async def test_entry_is_on_disk_when_the_call_returns(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    request = bound.chat_request("openai", "gpt-4o", "Hi")
    await bound.get_or_call(request, Provider())
    path = Path(bound.manager.cache_dir, "openai", "gpt-4o", f"{request.key}.json")
    envelope = json.loads(path.read_bytes())
    assert envelope["key"] == request.key
    assert envelope["payload"]["response"]["text"] == "Paris. #1"
    assert envelope["payload"]["request"]["body"]["messages"][0]["content"] == "Hi"


async def test_generate_cache_key_matches_the_stored_key(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    messages = [{"role": "user", "content": "Hi"}]
    request = bound.chat_request("openai", "gpt-4o", messages, temperature=0.5, system_prompt="S")
    await bound.get_or_call(request, Provider())
    manager = bound.manager
    key = manager.generate_cache_key(
        "openai", "gpt-4o", messages, temperature=0.5, system_prompt="S"
    )
    assert key == request.key
    assert manager.has_entry(key)
    assert manager.remove_entry(key)
    assert not manager.has_entry(key)
    assert not manager.remove_entry(key)


async def test_has_entry_finds_keys_written_by_another_manager(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    request = bound.chat_request("gemini", "gemini-2.0-flash", "Hi")
    await bound.get_or_call(request, Provider())
    other = CacheManager(bound.manager.cache_dir)
    assert other.has_entry(request.key)
    assert not other.has_entry("0" * 64)
    assert not other.has_entry("../../etc/passwd")


async def test_single_flight_makes_one_call_for_concurrent_identical_misses(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    provider = Provider(delay=0.1)
    request = bound.chat_request("openai", "gpt-4o", "Hi")
    results = await asyncio.gather(*(bound.get_or_call(request, provider) for _ in range(50)))
    assert provider.calls == 1
    assert {r.response["text"] for r in results} == {"Paris. #1"}
    assert sum(not r.cached for r in results) == 1


async def test_a_leaders_failure_is_its_own_each_follower_makes_its_own_call(
    tmp_path: Path,
) -> None:
    """A failure may be the leader's own (its timeout, its credentials): the followers that
    waited each call for themselves, at once (not one after another), as the raw SDK would."""
    bound = bound_cache(tmp_path)
    calls, running, most = 0, 0, 0

    async def failing() -> Mapping[str, Any]:
        nonlocal calls, running, most
        calls, running = calls + 1, running + 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        raise RuntimeError("provider down")

    request = bound.chat_request("openai", "gpt-4o", "Hi")
    results = await asyncio.gather(
        *(bound.get_or_call(request, failing) for _ in range(5)), return_exceptions=True
    )
    assert calls == 5
    assert all(isinstance(r, RuntimeError) for r in results)
    assert most == 4, "the four followers call together, not one after another"
    assert not bound.manager.has_entry(request.key)
    assert len(bound.manager.flight) == 0


async def test_followers_of_a_leader_that_failed_get_their_own_answers(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    provider = Provider(delay=0.1)

    async def impatient() -> Mapping[str, Any]:
        await asyncio.sleep(0.05)
        raise TimeoutError("the leader's own timeout")

    request = bound.chat_request("openai", "gpt-4o", "Hi")
    leader = asyncio.create_task(bound.get_or_call(request, impatient))
    await asyncio.sleep(0.01)
    followers = [asyncio.create_task(bound.get_or_call(request, provider)) for _ in range(3)]
    with pytest.raises(TimeoutError):
        await leader
    results = await asyncio.gather(*followers)
    assert all(r.response["text"].startswith("Paris.") for r in results)
    assert provider.calls == 3
    assert bound.manager.has_entry(request.key)


async def test_cancelled_leader_hands_over_to_a_follower(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    provider = Provider(delay=0.2)
    request = bound.chat_request("openai", "gpt-4o", "Hi")
    leader = asyncio.create_task(bound.get_or_call(request, provider))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(bound.get_or_call(request, provider))
    await asyncio.sleep(0.01)
    leader.cancel()
    result = await follower
    assert result.response["text"] == "Paris. #2"
    assert provider.calls == 2


async def test_models_with_different_ttls_share_one_directory(tmp_path: Path) -> None:
    long_cfg = CacheConfig(enabled=True, cache_dir=tmp_path / "c", ttl_seconds=3600)
    short_cfg = CacheConfig(enabled=True, cache_dir=tmp_path / "c", ttl_seconds=1)
    manager = CacheManager.get_instance(tmp_path / "c")
    long_lived, short_lived = manager.bind(long_cfg), manager.bind(short_cfg)
    assert long_lived is not short_lived
    request = long_lived.chat_request("openai", "gpt-4o", "Hi")
    await long_lived.get_or_call(request, Provider())
    envelope = json.loads(Path(manager.store.location("openai", "gpt-4o", request.key)).read_text())
    assert envelope["expires_at"] - envelope["created_at"] == pytest.approx(3600)
    assert short_lived.lookup(request) is not None
    await asyncio.sleep(1.05)
    assert short_lived.lookup(request) is None, "older than the short reader's own TTL"
    assert long_lived.lookup(request) is not None


async def test_clear_provider_model_and_all(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path)
    for provider, model in [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("gemini", "g")]:
        for question in ("a", "b"):
            await bound.get_or_call(bound.chat_request(provider, model, question), Provider())
    manager = bound.manager
    assert manager.clear_model("openai", "gpt-4o-mini") == 2
    assert manager.get_stats()["entries_by_model"] == {"openai": {"gpt-4o": 2}, "gemini": {"g": 2}}
    assert manager.clear_provider("gemini") == 2
    assert manager.get_stats()["entries_by_provider"] == {"openai": 2}
    assert manager.clear_all() == 2
    assert manager.get_stats()["total_entries"] == 0
    assert manager.cache_dir.is_dir(), "the directory stays"
    provider = Provider()
    await bound.get_or_call(bound.chat_request("openai", "gpt-4o", "a"), provider)
    assert provider.calls == 1, "a cleared entry is a miss, even from the memory tier"


async def test_cleanup_expired_counts_removed_entries(tmp_path: Path) -> None:
    short = bound_cache(tmp_path, ttl_seconds=0.5)
    manager = short.manager
    keep = manager.bind(CacheConfig(enabled=True, cache_dir=manager.cache_dir, ttl_seconds=0))
    for question in ("a", "b", "c"):
        await short.get_or_call(short.chat_request("openai", "m", question), Provider())
    await keep.get_or_call(keep.chat_request("openai", "m", "forever"), Provider())
    assert manager.cleanup_expired() == 0
    await asyncio.sleep(0.6)
    assert manager.cleanup_expired() == 3
    assert manager.get_stats()["total_entries"] == 1


async def test_replay_mode_miss_names_what_is_missing(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path, mode="replay")
    provider = Provider()
    request = bound.chat_request("openai", "gpt-4o", "Hi")
    with pytest.raises(CacheMissError, match=r"openai/gpt-4o") as info:
        await bound.get_or_call(request, provider)
    assert info.value.key == request.key
    assert provider.calls == 0


async def test_manager_get_or_call_with_a_model_config(tmp_path: Path) -> None:
    manager = CacheManager.get_instance(tmp_path / "c")
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "c", namespace="team-a")
    request = manager.bind(config).chat_request("openai", "gpt-4o", "Hi")
    assert request.key != manager.generate_cache_key("openai", "gpt-4o", "Hi")
    assert request.key == manager.generate_cache_key("openai", "gpt-4o", "Hi", namespace="team-a")
    result = await manager.get_or_call(request, Provider(), config)
    assert not result.cached
    assert (await manager.get_or_call(request, Provider(), config)).cached


async def test_size_limit_evicts_least_recently_used_without_rewriting_on_read(
    tmp_path: Path,
) -> None:
    bound = bound_cache(tmp_path, max_cache_size_mb=1)
    big = Provider(text="x" * 900)
    requests = [bound.chat_request("openai", "m", f"q{i}") for i in range(30)]
    for index, request in enumerate(requests):
        await bound.get_or_call(request, big)
        path = Path(bound.manager.store.location("openai", "m", request.key))
        os.utime(path, ns=(index * 10**9, path.stat().st_mtime_ns))  # a clear access order
    favourite = Path(bound.manager.store.location("openai", "m", requests[0].key))
    before = (favourite.read_bytes(), favourite.stat().st_mtime_ns)
    bound.manager.memory.clear()
    assert bound.lookup(requests[0]) is not None  # a read: marks it recently used
    assert (favourite.read_bytes(), favourite.stat().st_mtime_ns) == before
    bound.manager.wait_for_maintenance()
    assert bound.manager.get_stats()["total_entries"] == 30
    bound.manager.max_bytes = 20_000
    evicted = bound.manager.enforce_size_limit()
    stats = bound.manager.get_stats()
    assert evicted > 0
    assert stats["total_size_bytes"] <= 20_000
    assert favourite.exists(), "recently read entry survives"
    assert not Path(bound.manager.store.location("openai", "m", requests[1].key)).exists()


async def test_writes_trigger_background_eviction(tmp_path: Path) -> None:
    bound = bound_cache(tmp_path, max_cache_size_mb=0.01)
    big = Provider(text="y" * 900)
    for index in range(40):
        await bound.get_or_call(bound.chat_request("openai", "m", f"q{index}"), big)
        bound.manager.wait_for_maintenance()
    assert bound.manager.get_stats()["total_size_bytes"] <= 0.01 * 2**20 + 2048


def test_encrypted_manager_needs_a_key_and_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", key)
    bound = bound_cache(tmp_path, encrypt=True)
    assert bound.keyring is not None
    request = bound.chat_request("openai", "gpt-4o", "secret question")
    assert bound.save(request, {"text": "secret answer"})
    data = Path(bound.manager.store.location("openai", "gpt-4o", request.key)).read_bytes()
    assert b"secret" not in data
    assert json.loads(data)["encryption"] == "fernet"


def test_invalid_config_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        CacheConfig(mode="replya", ttl_seconds=-1, max_cache_size_mb=0)  # type: ignore[arg-type]
    assert len(info.value.problems) == 3
    assert "read_write, read_only, replay, refresh" in str(info.value)


def test_a_cache_that_is_off_needs_no_key(tmp_path: Path) -> None:
    config = CacheConfig(enabled=False, encrypt=True, cache_dir=tmp_path / "c")
    assert CacheManager.get_instance(tmp_path / "c").bind(config).keyring is None


async def test_memory_tier_serves_no_binding_that_lacks_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    sealed = bound_cache(tmp_path, encrypt=True)
    request = sealed.chat_request("openai", "gpt-4o", "Hi")
    await sealed.get_or_call(request, Provider())
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())  # another key, same process
    other = sealed.manager.bind(CacheConfig(enabled=True, cache_dir=sealed.manager.cache_dir))
    assert other.lookup(request) is None, "decrypted in memory, but not with this binding's keys"
    assert sealed.lookup(request) is not None


def test_a_call_left_in_flight_by_a_closed_loop_is_forgotten(tmp_path: Path) -> None:
    """A loop closed while its leader waited (a sync wrapper that gave up) left its flight in
    the table for good; a later loop with the same id() would have waited on it."""
    bound = bound_cache(tmp_path)
    request = bound.chat_request("openai", "gpt-4o", "Hi")
    loop = asyncio.new_event_loop()
    leader = loop.create_task(bound.get_or_call(request, Provider(delay=3600)))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(bound.manager.flight) == 1
    leader.cancel()  # (what a closing loop leaves undone; the flight stays behind)
    loop.close()
    result = asyncio.run(
        bound.get_or_call(bound.chat_request("openai", "gpt-4o", "Ho"), Provider())
    )
    assert not result.cached
    assert len(bound.manager.flight) == 0


async def test_a_follower_that_once_swallowed_a_cancel_still_takes_over(tmp_path: Path) -> None:
    """Its task's stale cancelling() count was read as its own cancellation when the leader
    gave up: it raised CancelledError instead of leading the call."""
    bound = bound_cache(tmp_path)
    request = bound.chat_request("openai", "gpt-4o", "Hi")
    provider = Provider(delay=0.3)

    async def careless() -> Any:
        with contextlib.suppress(asyncio.CancelledError):  # ("cancel the prefetch, carry on")
            await asyncio.sleep(10)
        return await bound.get_or_call(request, provider)

    leader = asyncio.create_task(bound.get_or_call(request, provider))
    await asyncio.sleep(0.05)
    follower = asyncio.create_task(careless())
    await asyncio.sleep(0.01)
    follower.cancel()
    await asyncio.sleep(0.05)
    leader.cancel()
    result = await follower
    assert result.response["text"] == "Paris. #2"
    assert len(bound.manager.flight) == 0
