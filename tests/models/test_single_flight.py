"""Identical concurrent calls share one provider call, and never more than its answer.

Through the real SDKs: a follower waits for the leader's answer, but not for a stream its
consumer stopped reading, not for its own task, and not for a failure that may be the leader's
own (its timeout, its credentials); and the answer it gets is stored under its own rules
(docs/caching.md, "One call per question").
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from spark.errors import AuthenticationError, ProviderConnectionError, ProviderServerError
from spark.testing import ProviderServer
from tests.models.conftest import Models

MODEL_IDS = {
    "openai": "gpt-4o-mini",
    "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
    "gemini": "gemini-2.0-flash",
}
PROVIDERS = pytest.mark.parametrize("provider", sorted(MODEL_IDS))


async def joined(chunks: AsyncIterator[str]) -> str:
    return "".join([chunk async for chunk in chunks])


@PROVIDERS
async def test_a_stream_left_unread_does_not_block_the_same_question(
    provider: str, models: Models, server: ProviderServer
) -> None:
    model = models(provider, MODEL_IDS[provider])
    question = "Tell me a story"
    kept = model.stream_text(question)
    async for _ in kept:
        break  # stop reading, but keep the stream (it is not closed until collected)
    text = await asyncio.wait_for(model.get_text(question), 10)  # (wait_for: another task)
    assert text
    assert await asyncio.wait_for(joined(model.stream_text(question)), 10) == text
    assert server.count() == 2, "the kept stream's call, then the question asked again"
    await kept.aclose()
    assert await model.get_text(question) == text, "the answer asked again is the one stored"
    assert server.count() == 2


@PROVIDERS
async def test_the_same_question_inside_a_streams_loop_is_answered(
    provider: str, models: Models, server: ProviderServer
) -> None:
    model = models(provider, MODEL_IDS[provider])

    async def whole_text_while_streaming() -> str:
        async for _ in model.stream_text("Tell me a story"):
            return str(await model.get_text("Tell me a story"))  # (its own task: no deadlock)
        raise AssertionError("the stream yielded nothing")

    assert await asyncio.wait_for(whole_text_while_streaming(), 10)
    assert server.count() == 2


async def test_a_stream_that_breaks_hands_its_waiting_stream_a_call_of_its_own(
    models: Models, server: ProviderServer
) -> None:
    model = models("openai", MODEL_IDS["openai"])
    server.latency = 0.3
    server.fail_stream_after(chunks=2, count=1, status=500)  # only the first stream breaks
    leader = asyncio.create_task(joined(model.stream_text("Tell me a story")))
    await asyncio.sleep(0.1)
    follower = asyncio.create_task(joined(model.stream_text("Tell me a story")))
    with pytest.raises(ProviderServerError, match="broke off"):
        await leader
    assert await follower
    assert server.count() == 2
    assert (await model.generate("Tell me a story")).cached, "the follower's answer was stored"


async def test_a_leaders_timeout_is_not_its_followers(
    models: Models, server: ProviderServer
) -> None:
    """``timeout=`` is not keyed (it cannot change the answer), so it must not change another
    caller's outcome either."""
    model = models("openai", MODEL_IDS["openai"])
    server.latency = 0.5
    impatient = asyncio.create_task(model.get_text("Hi", timeout=0.1))
    await asyncio.sleep(0.05)
    patient = asyncio.create_task(model.get_text("Hi", timeout=30))
    with pytest.raises(ProviderConnectionError):
        await impatient
    assert await patient
    assert server.count() == 2


async def test_a_leaders_credentials_are_not_its_followers(
    models: Models, server: ProviderServer
) -> None:
    revoked = models("openai", MODEL_IDS["openai"], api_key="sk-revoked")
    good = models("openai", MODEL_IDS["openai"])
    server.latency = 0.3
    server.fail_next(401)  # the first request (the revoked key's) is refused
    first = asyncio.create_task(revoked.get_text("Hi"))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(good.get_text("Hi"))
    with pytest.raises(AuthenticationError):
        await first
    assert await second


async def test_a_follower_of_a_read_only_call_stores_its_answer(
    models: Models, server: ProviderServer
) -> None:
    model = models("openai", MODEL_IDS["openai"])
    server.latency = 0.3
    calls = [
        asyncio.create_task(model.get_text("Hi", cache_mode="read_only")),
        asyncio.create_task(model.get_text("Hi")),
    ]
    await asyncio.sleep(0)
    texts = await asyncio.gather(*calls)
    assert texts[0] == texts[1]
    assert server.count() == 1
    assert model.cache_manager.has_entry(model.cache_key("Hi")), "the read_write call returned"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_follower_is_stored_with_its_own_ttl(
    models: Models, server: ProviderServer, streamed: bool
) -> None:
    model = models("openai", MODEL_IDS["openai"])
    server.latency = 0.3

    async def ask(**options: Any) -> str:
        if streamed:
            return await joined(model.stream_text("Headlines?", **options))
        return str(await model.get_text("Headlines?", **options))

    first = asyncio.create_task(ask(cache_ttl_seconds=1))  # "news": a short TTL
    await asyncio.sleep(0.05)
    second = asyncio.create_task(ask())  # the model's own TTL (a day)
    await asyncio.gather(first, second)
    assert server.count() == 1
    await asyncio.sleep(1.2)
    server.reset()
    assert await ask()
    assert server.count() == 0, "the day-long call's entry outlives the 1 s call's TTL"


async def test_waiters_of_a_stalled_stream_share_one_call_of_their_own(
    models: Models, server: ProviderServer
) -> None:
    """A reader taking over a second per chunk (text to speech): one waiter takes the call
    over, the others follow it; not one call each."""
    model = models("openai", MODEL_IDS["openai"])
    slow = model.stream_text("Tell me a story")
    await anext(slow)  # its reader now takes its time
    waiters = [asyncio.create_task(model.get_text("Tell me a story")) for _ in range(4)]
    texts = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert len(set(texts)) == 1
    assert server.count() == 2
    await slow.aclose()


def _in_threads(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Each call in a thread of its own with its own event loop (``asyncio.run``, as a sync
    worker of a web app runs it), all started together; their results or errors, in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = asyncio.run(calls[index]())
        except Exception as exc:  # (the test looks at it)
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@PROVIDERS
def test_threads_with_their_own_loops_share_one_call(
    provider: str, server: ProviderServer, tmp_path: Path
) -> None:
    model = server.model(provider, MODEL_IDS[provider], enable_cache=True, cache_dir=tmp_path)
    server.latency = 0.5
    answers = _in_threads(*[lambda: model.get_text("the same question")] * 6)
    assert server.count() == 1
    assert all(isinstance(answer, str) for answer in answers), answers
    assert len(set(answers)) == 1
    stats = model.cache_manager.get_stats()
    assert (stats["hits"], stats["misses"]) == (5, 1)


def test_a_stream_in_one_thread_answers_a_call_in_another(
    server: ProviderServer, tmp_path: Path
) -> None:
    model = server.model("openai", MODEL_IDS["openai"], enable_cache=True, cache_dir=tmp_path)
    server.latency = 0.5

    async def late_call() -> str:
        await asyncio.sleep(0.1)  # (the stream leads)
        return await model.get_text("Tell me a story")

    streamed, called = _in_threads(lambda: joined(model.stream_text("Tell me a story")), late_call)
    assert streamed == called
    assert server.count() == 1


def test_a_leaders_failure_in_one_thread_is_not_another_threads(
    server: ProviderServer, tmp_path: Path
) -> None:
    model = server.model("openai", MODEL_IDS["openai"], enable_cache=True, cache_dir=tmp_path)
    server.latency = 0.3
    server.fail_next(500)  # the first request (the leader's) fails

    async def late_call() -> str:
        await asyncio.sleep(0.1)
        return await model.get_text("Hi")

    first, second = _in_threads(lambda: model.get_text("Hi"), late_call)
    assert isinstance(first, ProviderServerError)
    assert isinstance(second, str)
    assert server.count() == 2


def test_a_leader_whose_loop_stopped_is_not_waited_for(
    server: ProviderServer, tmp_path: Path
) -> None:
    """A worker thread that started the call as a task and left its loop (not closed, never
    run again): the call cannot end, so a caller in another thread leads instead of waiting."""
    model = server.model("openai", MODEL_IDS["openai"], enable_cache=True, cache_dir=tmp_path)
    server.latency = 0.5
    abandoned = asyncio.new_event_loop()
    left: list[asyncio.Task[str]] = []

    def leave_a_call_behind() -> None:
        left.append(abandoned.create_task(model.get_text("Hi")))
        abandoned.run_until_complete(asyncio.sleep(0.1))

    thread = threading.Thread(target=leave_a_call_behind)
    thread.start()
    thread.join()
    answer = asyncio.run(asyncio.wait_for(model.get_text("Hi"), 5))
    assert isinstance(answer, str)
    assert server.count() == 2
    left[0].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        abandoned.run_until_complete(left[0])
    abandoned.close()
