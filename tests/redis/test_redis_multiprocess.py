"""A fleet on one Redis: real processes share hits, and a concurrent identical miss costs exactly
one provider call (the cross-process claim). Provider calls are counted by the local provider
server the real OpenAI SDK talks to; the in-process tests drive two managers as two machines.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _redis_support import RedisServer

from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache
from spark.testing import ProviderServer

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "_procs" / "fleet_worker.py"


def run_fleet(
    count: int,
    server: ProviderServer,
    redis_url: str,
    prefix: str,
    tmp: Path,
    *prompts: str,
    local_tier: bool = False,
    extra: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Start ``count`` worker processes together; their JSON reports."""
    barrier = tmp / f"barrier-{time.monotonic_ns()}"
    barrier.mkdir()
    common = ["--url", redis_url, "--prefix", prefix, "--base-url", server.openai_base_url]
    common += ["--barrier", str(barrier)] + (["--local-tier"] if local_tier else [])
    common += list(extra)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                *common,
                "--worker",
                str(n),
                "--local",
                str(tmp / f"machine-{n}"),
                *prompts,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    deadline = time.monotonic() + 30
    while len(list(barrier.glob("ready-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    (barrier / "go.tmp").write_text(str(time.time() + 0.1))
    (barrier / "go.tmp").replace(barrier / "go")
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        reports.append(json.loads(out))
    return reports


@pytest.mark.parametrize("local_tier", [False, True], ids=["redis", "tiered"])
def test_a_fleet_makes_one_provider_call_and_shares_hits(
    redis_server: RedisServer, prefix: str, tmp_path: Path, local_tier: bool
) -> None:
    with ProviderServer(latency=0.5) as server:
        first = run_fleet(
            4,
            server,
            redis_server.url,
            prefix,
            tmp_path,
            "the fleet question",
            local_tier=local_tier,
        )
        assert server.count() == 1, "four processes, one concurrent identical miss: one call"
        answers = [report["results"][0] for report in first]
        assert len({a["text"] for a in answers}) == 1
        assert sorted(a["cached"] for a in answers) == [False, True, True, True]
        second = run_fleet(
            4,
            server,
            redis_server.url,
            prefix,
            tmp_path,
            "the fleet question",
            "another",
            local_tier=local_tier,
        )
    assert server.count() == 2, "the shared entry served every process; 'another' once"
    assert all(report["results"][0]["cached"] for report in second)
    assert sorted(report["results"][1]["cached"] for report in second) == [
        False,
        True,
        True,
        True,
    ]


class Provider:
    """A provider call that takes ``delay`` and may fail; counts calls."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("provider down")
        return {"text": "the answer", "cost_usd": 0.01}


def machine(redis_server: RedisServer, prefix: str, **changes: Any) -> BoundCache:
    """A cache as a separate machine would hold it (its own manager, own single-flight)."""
    config = CacheConfig(
        enabled=True, backend="redis", url=redis_server.url, prefix=prefix, **changes
    )
    return CacheManager(None, config).bind(config)


async def test_a_waiter_takes_over_when_the_holder_fails(
    redis_server: RedisServer, prefix: str
) -> None:
    one, two = machine(redis_server, prefix), machine(redis_server, prefix)
    failing, working = Provider(delay=0.2, fail=True), Provider()
    request = one.chat_request("openai", "gpt-4o", "q")
    results = await asyncio.gather(
        one.get_or_call(request, failing),
        two.get_or_call(request, working),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError)
    assert not isinstance(results[1], BaseException)
    assert not results[1].cached
    assert (failing.calls, working.calls) == (1, 1)


async def test_a_waiter_takes_over_a_claim_whose_holder_died(
    redis_server: RedisServer, prefix: str
) -> None:
    crashed = machine(redis_server, prefix, lock_seconds=0.3)
    request = crashed.chat_request("openai", "gpt-4o", "q")
    assert crashed.manager.store.try_lock(request.key)  # and the process dies holding it
    waiter, provider = machine(redis_server, prefix), Provider()
    started = time.perf_counter()
    result = await waiter.get_or_call(request, provider)
    waited = time.perf_counter() - started
    assert not result.cached
    assert provider.calls == 1
    assert 0.25 < waited < 1.0, "waited for the claim to expire, not for lock_seconds of its own"


@pytest.mark.parametrize("planted", ["no expiry", "another type"])
async def test_a_key_at_a_claim_that_can_be_no_live_claim_is_taken_over(
    redis_server: RedisServer, raw: Any, prefix: str, planted: str
) -> None:
    """A claim always expires; a key there that never does (PERSISTed, planted, of another
    type) is no process's claim, and waiting for it would never end."""
    waiter, provider = machine(redis_server, prefix, lock_seconds=2), Provider()
    request = waiter.chat_request("openai", "gpt-4o", "q")
    name = f"{prefix}lock:{request.key}"
    if planted == "no expiry":
        raw.set(name, "a stale token")
    else:
        raw.rpush(name, "x")
    result = await asyncio.wait_for(waiter.get_or_call(request, provider), 5)
    assert not result.cached
    assert provider.calls == 1
    assert raw.get(name) is None, "the claim taken over was released"


async def test_a_waiter_reads_the_holders_answer_as_a_hit(
    redis_server: RedisServer, prefix: str
) -> None:
    one, two = machine(redis_server, prefix), machine(redis_server, prefix)
    slow, other = Provider(delay=0.3), Provider()
    request = one.chat_request("openai", "gpt-4o", "q")
    first = asyncio.ensure_future(one.get_or_call(request, slow))
    await asyncio.sleep(0.05)  # `one` holds the claim
    started = time.perf_counter()
    second = await two.get_or_call(request, other)
    assert second.cached
    assert other.calls == 0
    assert time.perf_counter() - started < 0.6  # the holder takes 0.3 s; then one poll
    assert not (await first).cached
    assert two.manager.counters.hits == 1


@pytest.mark.parametrize("second_kind", ["stream", "plain"])
async def test_a_stream_takes_the_claim_a_plain_call_takes(
    redis_server: RedisServer, prefix: str, second_kind: str
) -> None:
    """Two machines, the same question, the first streamed: one provider call, and the second
    (streamed or plain) is the first's answer as a hit."""
    one, two = machine(redis_server, prefix), machine(redis_server, prefix)
    calls = 0

    async def open_stream() -> Any:
        nonlocal calls
        calls += 1
        for piece in ("the ", "answer"):
            await asyncio.sleep(0.15)
            yield piece
        yield {"text": "the answer", "chunks": ["the ", "answer"], "cost_usd": 0.01}

    async def plain() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"text": "another answer", "cost_usd": 0.01}

    request = one.chat_request("openai", "gpt-4o", "q")
    first = asyncio.ensure_future(_joined(one.stream_or_call(request, open_stream)))
    await asyncio.sleep(0.05)  # `one` holds the claim
    if second_kind == "stream":
        second = await _joined(two.stream_or_call(request, open_stream))
    else:
        second = (await two.get_or_call(request, plain)).response["text"]
    assert await first == second == "the answer"
    assert calls == 1
    assert two.manager.counters.hits == 1


async def _joined(chunks: Any) -> str:
    return "".join([chunk async for chunk in chunks])


async def test_the_same_question_inside_a_streams_loop_is_answered_on_redis(
    redis_server: RedisServer, prefix: str
) -> None:
    """It waited for ever on the claim its own stream held (and renewed)."""
    one = machine(redis_server, prefix)
    request = one.chat_request("openai", "gpt-4o", "q")

    async def open_stream() -> Any:
        for piece in ("the ", "answer"):
            yield piece
        yield {"text": "the answer", "chunks": ["the ", "answer"], "cost_usd": 0.01}

    async def inside() -> str:
        async for _ in one.stream_or_call(request, open_stream):
            return str((await one.get_or_call(request, Provider())).response["text"])
        raise AssertionError("no chunk")

    assert await asyncio.wait_for(inside(), 10) == "the answer"


async def test_a_stream_kept_unread_holds_another_machine_back_for_lock_seconds_at_most(
    redis_server: RedisServer, prefix: str
) -> None:
    one = machine(redis_server, prefix, lock_seconds=1.5)
    two = machine(redis_server, prefix, lock_seconds=1.5)
    request = one.chat_request("openai", "gpt-4o", "q")

    async def open_stream() -> Any:
        for piece in ("the ", "answer"):
            yield piece
        yield {"text": "the answer", "chunks": ["the ", "answer"], "cost_usd": 0.01}

    kept = one.stream_or_call(request, open_stream)
    await anext(kept)  # and never read again
    provider = Provider()
    result = await asyncio.wait_for(two.get_or_call(request, provider), 10)
    assert provider.calls == 1
    assert not result.cached
    await kept.aclose()
