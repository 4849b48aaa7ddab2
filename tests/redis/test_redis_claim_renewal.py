"""The cross-process claim is renewed while the provider call runs: a call slower than
``lock_seconds`` is still made once by a fleet, a cancelled call gives its claim up at once, and a
process that dies stops renewing, so another takes over after ``lock_seconds``. Real processes,
the real OpenAI SDK against the local provider server (which counts the calls)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from _redis_support import RedisServer
from test_redis_multiprocess import WORKER, machine, run_fleet

from spark.testing import ProviderServer

pytestmark = pytest.mark.slow


def test_a_call_longer_than_lock_seconds_is_made_once(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    with ProviderServer(latency=3.5) as server:
        reports = run_fleet(
            2,
            server,
            redis_server.url,
            prefix,
            tmp_path,
            "a slow reasoning question",
            extra=("--lock-seconds", "1.5"),
        )
        assert server.count() == 1, "the claim outlived lock_seconds: one provider call"
    answers = [report["results"][0] for report in reports]
    assert sorted(a["cached"] for a in answers) == [False, True]
    assert len({a["text"] for a in answers}) == 1


def test_a_process_that_dies_holding_the_claim_is_taken_over(
    redis_server: RedisServer, raw: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    with ProviderServer(latency=5.0) as server:
        barrier = tmp_path / "barrier"
        barrier.mkdir()
        (barrier / "go").write_text(str(time.time()))
        holder = subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "--url",
                redis_server.url,
                "--prefix",
                prefix,
                "--base-url",
                server.openai_base_url,
                "--barrier",
                str(barrier),
                "--worker",
                "0",
                "--local",
                str(tmp_path / "m0"),
                "--lock-seconds",
                "1.5",
                "the question",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while not list(raw.scan_iter(match=f"{prefix}lock:*")):
                assert time.monotonic() < deadline, "the holder never claimed the key"
                time.sleep(0.02)
            [claim] = list(raw.scan_iter(match=f"{prefix}lock:*"))
            last = raw.pttl(claim)
            while (left := raw.pttl(claim)) <= last:  # renewed: its time to live went up
                assert time.monotonic() < deadline, "the claim was never renewed"
                assert left > 0, "the claim expired: it was never renewed"
                last = left
                time.sleep(0.02)
        finally:
            holder.kill()
            holder.wait(10)
        killed = time.monotonic()
        waiter = machine(redis_server, prefix)
        request = waiter.chat_request("openai", "gpt-4o", "the question")
        calls = Provider()
        result = asyncio.run(waiter.get_or_call(request, calls))
        waited = time.monotonic() - killed
    assert not result.cached
    assert calls.calls == 1
    assert waited < 2.5, "taken over once the dead holder's claim expired (1.5 s)"


class Provider:
    """A provider call that counts itself."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"text": "answer", "cost_usd": 0.01}


async def test_a_cancelled_call_gives_its_claim_up_at_once(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    one = machine(redis_server, prefix, lock_seconds=0.3)
    request = one.chat_request("openai", "gpt-4o", "q")
    task = asyncio.ensure_future(one.get_or_call(request, Provider(delay=10)))
    await asyncio.sleep(0.5)  # past lock_seconds: the claim is alive because it is renewed
    assert raw.exists(f"{prefix}lock:{request.key}")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not raw.exists(f"{prefix}lock:{request.key}")
    await asyncio.sleep(0.2)
    assert not raw.exists(f"{prefix}lock:{request.key}"), "no renewal after the cancel"


def test_a_claim_is_kept_while_the_event_loop_is_blocked(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    """The call's own process keeps renewing even while its event loop is busy (an SDK's first
    call builds its client and imports its modules there): no other process takes over."""
    one = machine(redis_server, prefix, lock_seconds=0.3)
    request = one.chat_request("openai", "gpt-4o", "q")
    claim = f"{prefix}lock:{request.key}"
    seen: list[int] = []

    async def blocking_call() -> dict[str, Any]:
        for _ in range(10):  # 1 s in all, the event loop never free
            time.sleep(0.1)
            seen.append(raw.pttl(claim))
        return {"text": "answer", "cost_usd": 0.01}

    result = asyncio.run(one.get_or_call(request, blocking_call))
    assert not result.cached
    assert min(seen) > 0, f"the claim lapsed while the loop was blocked: {seen}"
    assert not raw.exists(claim), "given up once the call returned"


def test_a_failed_renewal_is_tried_again(
    redis_server: RedisServer, raw: redis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal that raises (a fault injected into the first one) does not end the renewing:
    the claim outlives ``lock_seconds`` three times over."""
    one = machine(redis_server, prefix, lock_seconds=0.6)
    request = one.chat_request("openai", "gpt-4o", "q")
    claim = f"{prefix}lock:{request.key}"
    store = one.manager.store
    real = store.renew_lock
    faults = [RuntimeError("injected")]

    def flaky(key: str, token: str) -> bool:
        if faults:
            raise faults.pop(0)
        return real(key, token)

    monkeypatch.setattr(store, "renew_lock", flaky)

    async def slow_call() -> dict[str, Any]:
        await asyncio.sleep(1.8)
        return {"text": "answer", "cost_usd": 0.01}

    async def run() -> list[int]:
        task = asyncio.ensure_future(one.get_or_call(request, slow_call))
        seen = []
        while not task.done():
            seen.append(raw.pttl(claim))
            await asyncio.sleep(0.05)
        assert not (await task).cached
        return seen

    seen = asyncio.run(run())
    assert faults == []
    assert min(seen[1:-2]) > 0, f"the claim lapsed: {seen}"
