"""Redis found through Sentinel: the master of the service is used, and a failover is survived:
calls keep answering while it runs, and once the Sentinel has promoted the replica the next
write goes to the new master."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from _redis_support import SentinelSetup

from spark.cache import CacheConfig, CacheManager

pytestmark = pytest.mark.slow


class Provider:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"text": f"answer #{self.calls}", "cost_usd": 0.001}


@pytest.fixture
def own_sentinel(redis_binary: str, tmp_path: Path) -> SentinelSetup:
    setup = SentinelSetup(redis_binary, tmp_path / "sentinel").start()
    yield setup  # type: ignore[misc]
    setup.stop()


async def test_a_failover_is_survived(own_sentinel: SentinelSetup, prefix: str) -> None:
    config = CacheConfig(
        enabled=True,
        backend="redis",
        sentinel=[own_sentinel.address],
        service=SentinelSetup.SERVICE,
        prefix=prefix,
        cooldown_seconds=0.2,
    )
    bound = CacheManager(None, config).bind(config)
    assert bound.manager.store.describe().startswith(f"Sentinel {own_sentinel.address}")
    provider = Provider()
    before = bound.chat_request("openai", "gpt-4o", "before the failover")
    await bound.get_or_call(before, provider)
    assert (await bound.get_or_call(before, provider)).cached
    old_port = own_sentinel.master.port
    master = redis.Redis(port=old_port)
    # Replication is asynchronous: wait until the replica has the entry, or killing the master
    # may lose it (what the last assertion checks is the failover, not that race).
    assert master.wait(1, 5000) >= 1, "the replica never acknowledged the write"
    master.close()
    own_sentinel.master.kill()
    deadline = time.monotonic() + 30
    n = 0
    while True:  # every call answers meanwhile; stop once a write lands on the new master
        n += 1
        request = bound.chat_request("openai", "gpt-4o", f"during {n}")
        result = await bound.get_or_call(request, provider)
        assert not result.cached
        if own_sentinel.master_port() != old_port:
            new = redis.Redis(port=own_sentinel.replica.port)
            name = f"{prefix}e:openai/gpt-4o/{request.key}"
            if new.exists(name):
                new.close()
                break
            new.close()
        assert time.monotonic() < deadline, "no write reached the promoted master"
        await asyncio.sleep(0.05)
    assert (await bound.get_or_call(request, provider)).cached, "read back from the new master"
    assert (await bound.get_or_call(before, provider)).cached, "replicated before the crash"
