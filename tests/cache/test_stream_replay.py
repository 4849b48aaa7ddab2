"""A stream of a cached answer never disagrees with a plain call of it: the recorded chunks when
they make up the answer's text, else the text in one chunk (docs/caching.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from spark.cache import CacheConfig, CacheManager


def answer(text: str, chunks: list[str]) -> dict[str, Any]:
    return {"text": text, "tool_calls": [], "finish_reason": "stop", "chunks": chunks}


async def record_and_replay(tmp_path: Path, text: str, chunks: list[str]) -> list[str]:
    config = CacheConfig(enabled=True, cache_dir=tmp_path)
    bound = CacheManager(tmp_path, config).bind(config)
    request = bound.chat_request("openai", "gpt-4o", "Describe a city")

    async def provider() -> AsyncIterator[str | dict[str, Any]]:
        for chunk in chunks:
            yield chunk
        yield answer(text, chunks)

    recorded = [chunk async for chunk in bound.stream_or_call(request, provider)]
    assert recorded == chunks  # what the provider's stream yielded, as it came
    return [chunk async for chunk in bound.stream_or_call(request, provider)]


async def test_a_replay_yields_the_recorded_chunks(tmp_path: Path) -> None:
    assert await record_and_replay(tmp_path, "Oslo is cold.", ["Oslo ", "is ", "cold."]) == [
        "Oslo ",
        "is ",
        "cold.",
    ]


async def test_chunks_that_do_not_make_up_the_text_give_way_to_it(tmp_path: Path) -> None:
    """As an entry of a stream that yielded none of its text (Bedrock's structured answer
    before it was fixed) has them: the replay was empty while a plain call gave the JSON."""
    assert await record_and_replay(tmp_path, '{"city": "Oslo"}', []) == ['{"city": "Oslo"}']
