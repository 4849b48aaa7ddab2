"""Replay misses explain themselves: the nearest stored request and a field-level difference."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache
from spark.cache.explain import diff_requests
from spark.errors import CacheMissError

CONVERSATION = [
    {"role": "user", "content": "Plan a trip to Lisbon."},
    {"role": "assistant", "content": "Sure: three days?"},
    {"role": "user", "content": "Yes, three days in May."},
]
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}


async def answer() -> Mapping[str, Any]:
    return {"text": "Day 1: Alfama."}


def caches(tmp_path: Path, **config: Any) -> tuple[BoundCache, BoundCache]:
    """A recording cache and a replaying cache over one directory."""
    record = CacheConfig(enabled=True, cache_dir=tmp_path / "c", **config)
    replay = CacheConfig(enabled=True, cache_dir=tmp_path / "c", mode="replay", **config)
    manager = CacheManager.get_instance(tmp_path / "c")
    return manager.bind(record), manager.bind(replay)


def test_diff_names_changed_added_and_removed_fields() -> None:
    stored = {"params": {"temperature": 0.7}, "messages": [1, 2], "tools": []}
    requested = {"params": {"temperature": 0.9, "seed": 1}, "messages": [1], "tools": [WEATHER]}
    assert diff_requests(stored, requested) == [
        "messages[1] removed",
        "params.seed added: 1",
        "params.temperature: 0.7 -> 0.9",
        "tools[0] added",
    ]


async def test_replay_miss_shows_the_nearest_entry_and_the_difference(tmp_path: Path) -> None:
    record, replay = caches(tmp_path)
    await record.get_or_call(record.chat_request("openai", "gpt-4o", "unrelated"), answer)
    stored = record.chat_request("openai", "gpt-4o", CONVERSATION, temperature=0.7)
    await record.get_or_call(stored, answer)
    changed = [*CONVERSATION[:2], {"role": "user", "content": "Yes, four days in May."}]
    request = replay.chat_request("openai", "gpt-4o", changed, temperature=0.9, tools=[WEATHER])
    with pytest.raises(CacheMissError) as info:
        await replay.get_or_call(request, answer)
    message = str(info.value)
    assert "openai/gpt-4o" in message
    assert stored.key in message, "names the nearest stored entry's file"
    assert "params.temperature: 0.7 -> 0.9" in message
    assert "messages[2].content changed" in message
    assert "tools added" in message
    assert "SPARK_CACHE_MODE=read_write" in message


async def test_replay_miss_with_no_entry_for_the_model(tmp_path: Path) -> None:
    _, replay = caches(tmp_path)
    with pytest.raises(CacheMissError, match="No entry is stored for this model"):
        await replay.get_or_call(replay.chat_request("gemini", "g", "hi"), answer)


async def test_encrypted_entries_without_the_key_say_which_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    record, _ = caches(tmp_path, encrypt=True)
    await record.get_or_call(record.chat_request("openai", "gpt-4o", "hi"), answer)
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())  # a different key: cannot compare
    _, replay = caches(tmp_path, encrypt=True)
    with pytest.raises(CacheMissError, match=r"encrypted .* set SPARK_CACHE_KEY"):
        await replay.get_or_call(replay.chat_request("openai", "gpt-4o", "hello"), answer)


@pytest.mark.parametrize("damage", ["truncated", "edited"])
async def test_replay_names_a_damaged_entry_and_its_reason(tmp_path: Path, damage: str) -> None:
    record, replay = caches(tmp_path)
    request = record.chat_request("openai", "gpt-4o", "hi")
    await record.get_or_call(request, answer)
    path = Path(record.manager.store.entry_path("openai", "gpt-4o", request.key))
    data = path.read_bytes()
    path.write_bytes(
        data[: len(data) // 2] if damage == "truncated" else data.replace(b"hi", b"yo")
    )
    record.manager.memory.clear()
    with pytest.raises(CacheMissError, match="is unusable") as info:
        await replay.get_or_call(request, answer)
    assert str(path) in str(info.value)
    assert "re-record it" in str(info.value)
