"""Committed caches stay quiet and small: no rewrite of unchanged answers, prune of unused ones."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache
from spark.cache.ledger.usage import USAGE_RECORD_NAME
from spark.errors import CacheError


def answering(text: str) -> Any:
    async def call() -> Mapping[str, Any]:
        return {"text": text}

    return call


def bind(tmp_path: Path, **config: Any) -> BoundCache:
    cfg = CacheConfig(enabled=True, cache_dir=tmp_path / "c", **config)
    return CacheManager.get_instance(tmp_path / "c").bind(cfg)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*.json")
        if not p.name.startswith(".")
    }


@pytest.mark.parametrize("encrypt", [False, True])
async def test_refresh_with_the_same_answer_rewrites_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypt: bool
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    record = bind(tmp_path, encrypt=encrypt)
    for question in ("a", "b"):
        await record.get_or_call(record.chat_request("openai", "m", question), answering("same"))
    before = snapshot(tmp_path / "c")
    time.sleep(0.01)
    refresh = bind(tmp_path, encrypt=encrypt, mode="refresh")
    result = await refresh.get_or_call(refresh.chat_request("openai", "m", "a"), answering("same"))
    assert not result.cached, "refresh always calls the provider"
    assert snapshot(tmp_path / "c") == before, "same answer: bytes and mtime untouched"
    await refresh.get_or_call(refresh.chat_request("openai", "m", "b"), answering("changed"))
    after = snapshot(tmp_path / "c")
    changed = [name for name in after if after[name] != before[name]]
    assert len(changed) == 1


async def test_refresh_rewrites_a_plaintext_entry_once_encryption_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    plain = bind(tmp_path)
    await plain.get_or_call(plain.chat_request("openai", "m", "a"), answering("same"))
    sealed = bind(tmp_path, encrypt=True, mode="refresh")
    await sealed.get_or_call(sealed.chat_request("openai", "m", "a"), answering("same"))
    [entry] = snapshot(tmp_path / "c").values()
    assert b'"encryption":"fernet"' in entry[0]


async def test_replay_serves_entries_past_their_ttl(tmp_path: Path) -> None:
    record = bind(tmp_path, ttl_seconds=0.05)
    request = record.chat_request("openai", "m", "a")
    await record.get_or_call(request, answering("recorded"))
    time.sleep(0.1)
    assert record.lookup(request) is None, "read_write respects the TTL"
    replay = bind(tmp_path, ttl_seconds=0.05, mode="replay")
    result = await replay.get_or_call(request, answering("never called"))
    assert (result.response["text"], result.cached) == ("recorded", True)


async def test_prune_unused_keeps_what_the_last_run_used(tmp_path: Path) -> None:
    old_run = bind(tmp_path)
    for question in ("kept", "dropped", "also dropped"):
        await old_run.get_or_call(old_run.chat_request("openai", "m", question), answering("x"))
    CacheManager.reset_instances()
    new_run = bind(tmp_path)
    await new_run.get_or_call(new_run.chat_request("openai", "m", "kept"), answering("x"))
    await new_run.get_or_call(new_run.chat_request("gemini", "g", "new"), answering("y"))
    record = new_run.manager.write_usage_record()
    assert record.name == USAGE_RECORD_NAME
    assert CacheManager(tmp_path / "c").prune_unused() == 2
    stats = CacheManager(tmp_path / "c").get_stats()
    assert stats["entries_by_model"] == {"openai": {"m": 1}, "gemini": {"g": 1}}


async def test_prune_keeps_entries_recorded_after_the_run(tmp_path: Path) -> None:
    old_run = bind(tmp_path)
    await old_run.get_or_call(old_run.chat_request("openai", "m", "stale"), answering("x"))
    CacheManager.reset_instances()
    run = bind(tmp_path)
    await run.get_or_call(run.chat_request("openai", "m", "used"), answering("x"))
    run.manager.write_usage_record()
    time.sleep(0.01)
    CacheManager.reset_instances()
    teammate = bind(tmp_path)  # (their recording, pulled after this machine's run: the record
    # is per machine, so it cannot know of it)
    await teammate.get_or_call(teammate.chat_request("openai", "m", "theirs"), answering("y"))

    assert CacheManager(tmp_path / "c").prune_unused() == 1
    kept = CacheManager(tmp_path / "c").bind(teammate.config)
    assert kept.lookup(kept.chat_request("openai", "m", "theirs")) is not None
    assert kept.lookup(kept.chat_request("openai", "m", "used")) is not None
    assert kept.lookup(kept.chat_request("openai", "m", "stale")) is None


def test_prune_without_a_recorded_run_refuses(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="record the test suite first"):
        CacheManager(tmp_path / "c").prune_unused()
