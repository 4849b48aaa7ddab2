"""The two-tier store: a local disk copy in front of Redis, filled on remote hits that the reader
accepts (never with bytes it refuses), and its documented staleness (another machine's clear
does not reach this machine's copy)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import redis
from _redis_support import RedisServer

from spark.cache import CacheConfig, CacheManager, admin
from spark.cache.bound import BoundCache


class Provider:
    def __init__(self, text: str = "answer") -> None:
        self.calls = 0
        self.text = text

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"text": f"{self.text} #{self.calls}"}


def machine(server: RedisServer, prefix: str, local: Path | None, **changes: Any) -> BoundCache:
    """One machine's cache (its own manager): Redis only, or Redis behind ``local``."""
    config = CacheConfig(
        enabled=True,
        backend="redis",
        url=server.url,
        prefix=prefix,
        local_tier=local is not None,
        cache_dir=local,
        **changes,
    )
    return CacheManager(config.resolved_dir, config).bind(config)


async def ask(bound: BoundCache, prompt: str, provider: Provider) -> Any:
    return await bound.get_or_call(bound.chat_request("openai", "gpt-4o", prompt), provider)


def local_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.json")) if root.exists() else []


async def test_a_remote_hit_fills_the_local_tier(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    writer = machine(redis_server, prefix, tmp_path / "a")
    await ask(writer, "q", Provider())
    assert len(local_files(tmp_path / "a")) == 1
    reader = machine(redis_server, prefix, tmp_path / "b")
    assert local_files(tmp_path / "b") == []
    provider = Provider()
    assert (await ask(reader, "q", provider)).cached
    assert len(local_files(tmp_path / "b")) == 1
    assert (await ask(reader, "q", provider)).cached  # now from memory, validated by a stat
    assert provider.calls == 0


async def test_another_machines_clear_does_not_reach_a_local_copy(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    tiered = machine(redis_server, prefix, tmp_path / "a")
    await ask(tiered, "q", Provider())
    assert machine(redis_server, prefix, None).manager.clear_all() == 1  # elsewhere, Redis only
    provider = Provider()
    assert (await ask(tiered, "q", provider)).cached, "the documented staleness trade-off"
    assert tiered.manager.clear_all() == 0  # Redis is already empty; the local copy goes too
    assert local_files(tmp_path / "a") == []
    assert not (await ask(tiered, "q", provider)).cached


async def test_an_expired_local_copy_gives_way_to_a_fresher_remote_entry(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    short = machine(redis_server, prefix, tmp_path / "b", ttl_seconds=0.2)
    await ask(short, "q", Provider("old"))
    await asyncio.sleep(0.3)
    fresh = machine(redis_server, prefix, None, mode="refresh")
    await ask(fresh, "q", Provider("new"))  # another machine stores a fresh answer
    cold = machine(redis_server, prefix, tmp_path / "b")
    provider = Provider()
    result = await ask(cold, "q", provider)
    assert result.cached
    assert result.response["text"] == "new #1"
    assert provider.calls == 0


async def test_listings_read_the_shared_cache_without_copying_it(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    await ask(machine(redis_server, prefix, tmp_path / "a"), "q", Provider())
    lister = machine(redis_server, prefix, tmp_path / "b").manager.store
    [info] = list(admin.list_entries(lister))
    assert info.path == f"openai/gpt-4o/{info.key}"
    assert admin.check_entry(lister, admin.entry_files(lister)[0], None) is None
    assert local_files(tmp_path / "b") == []


async def test_bytes_the_reader_refuses_are_not_copied_and_are_named_by_their_redis_key(
    redis_server: RedisServer,
    raw: redis.Redis,
    prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tiered = machine(redis_server, prefix, tmp_path / "a")
    request = tiered.chat_request("openai", "gpt-4o", "q")
    raw.set(f"{prefix}e:openai/gpt-4o/{request.key}", b"GARBAGE FROM REDIS")

    async def failing() -> dict[str, Any]:
        raise RuntimeError("the provider is down too")

    with caplog.at_level(logging.WARNING, logger="spark"), pytest.raises(RuntimeError):
        await tiered.get_or_call(request, failing)  # (so no good answer overwrites anything)

    assert local_files(tmp_path / "a") == []
    [warning] = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
    assert f"openai/gpt-4o/{request.key} in {redis_server.url} prefix '{prefix}'" in warning
    assert str(tmp_path) not in warning
    provider = Provider()
    assert not (await ask(tiered, "q", provider)).cached  # a counted miss, then a good answer
    assert len(local_files(tmp_path / "a")) == 1
    assert (await ask(machine(redis_server, prefix, tmp_path / "b"), "q", provider)).cached
    assert len(local_files(tmp_path / "b")) == 1, "a good remote entry is still copied"
