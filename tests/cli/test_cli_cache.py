"""``spark cache stats|ls|show|clear|cleanup`` over entries written by the real cache engine."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from spark.cache import CacheConfig, CacheManager

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]


def test_ls_lists_metadata_only(spark: Invoke, fill: Fill, cache_dir: Path) -> None:
    keys = fill(3) + fill(1, provider="bedrock", model_id="anthropic.claude-3-haiku-20240307-v1:0")
    result = spark("cache", "ls", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert sorted(e["key"] for e in listed) == sorted(keys)
    assert {e["provider"] for e in listed} == {"openai", "bedrock"}
    assert all(e["encrypted"] is False and e["expires_at"] > e["created_at"] for e in listed)
    table = spark("cache", "ls", "--provider", "bedrock")
    assert "anthropic.claude-3-haiku-20240307-v1:0" in table.stdout
    assert keys[3][:12] in table.stdout
    assert keys[0][:12] not in table.stdout
    assert "1 entry, " in table.stdout
    only_model = json.loads(spark("cache", "ls", "--model", "gpt-4o-mini", "--json").stdout)
    assert len(only_model) == 3


def test_ls_of_an_empty_or_missing_directory(spark: Invoke, project: Path) -> None:
    result = spark("cache", "ls")
    assert result.exit_code == 0
    assert "0 entries" in result.stdout
    assert json.loads(spark("cache", "ls", "--json").stdout) == []


def test_dir_option_wins_over_the_profile(
    spark: Invoke, project: Path, tmp_path: Path, fill: Fill
) -> None:
    fill(2)
    other = tmp_path / "other-cache"
    config = CacheConfig(enabled=True, cache_dir=other)
    bound = CacheManager(other, config).bind(config)
    bound.save(bound.chat_request("gemini", "gemini-2.0-flash", "hi"), {"text": "hello"})
    listed = json.loads(spark("cache", "ls", "--dir", str(other), "--json").stdout)
    assert [e["provider"] for e in listed] == ["gemini"]


def test_show_by_prefix_decrypts_with_the_configured_key(
    spark: Invoke, project: Path, fill: Fill, key_file: Callable[..., str]
) -> None:
    key_file()
    (key,) = fill(1, encrypt=True, key_file=project / "secrets" / "cache.key")
    result = spark("cache", "show", key[:10], "--profile", "ci", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["meta"]["key"] == key
    assert shown["meta"]["encryption"] == "fernet"
    assert shown["payload"]["response"]["text"] == "answer 0"
    assert shown["payload"]["request"]["body"]["messages"][0]["content"] == "question 0"
    text = spark("cache", "show", key, "--profile", "ci").stdout
    assert "question 0" in text
    assert "answer 0" in text


def test_show_without_the_key_shows_metadata(
    spark: Invoke, project: Path, fill: Fill, key_file: Callable[..., str]
) -> None:
    key_file()
    (key,) = fill(1, encrypt=True, key_file=project / "secrets" / "cache.key")
    result = spark("cache", "show", key[:8])  # the dev profile has no key
    assert result.exit_code == 0
    assert "fernet (key " in result.stdout
    assert "payload     not shown: entry is encrypted" in result.stdout
    assert "answer 0" not in result.stdout


def test_show_errors(spark: Invoke, fill: Fill) -> None:
    keys = fill(40)
    short = spark("cache", "show", "abc")
    assert short.exit_code == 2
    assert "8 to 64 hex digits" in short.stderr
    absent = next(p for p in ("0" * 8, "f" * 8) if not any(k.startswith(p) for k in keys))
    missing = spark("cache", "show", absent)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: no cache entry with key")
    assert "Traceback" not in missing.output


def test_show_ambiguous_prefix(spark: Invoke, cache_dir: Path, fill: Fill) -> None:
    (key,) = fill(1)
    source = cache_dir / "openai" / "gpt-4o-mini" / f"{key}.json"
    twin = key[:8] + "0" * 56 if key[8] != "0" else key[:8] + "1" * 56
    (source.parent / f"{twin}.json").write_bytes(source.read_bytes())
    result = spark("cache", "show", key[:8])
    assert result.exit_code == 1
    assert "matches 2 entries" in result.stderr


def test_clear_asks_first(spark: Invoke, fill: Fill, cache_dir: Path) -> None:
    fill(3)
    fill(2, provider="bedrock", model_id="amazon.titan-text-lite-v1")
    declined = spark("cache", "clear", input="n\n")
    assert declined.exit_code == 1
    assert "Delete 5 entries (all providers)" in declined.stderr
    assert len(json.loads(spark("cache", "ls", "--json").stdout)) == 5
    accepted = spark("cache", "clear", "--provider", "bedrock", input="y\n")
    assert accepted.exit_code == 0
    assert "Removed 2 entries (bedrock)" in accepted.stdout
    assert not (cache_dir / "bedrock").exists()
    result = spark("cache", "clear", "--model", "gpt-4o-mini", "--yes", "--json")
    assert json.loads(result.stdout)["removed"] == 3
    assert cache_dir.is_dir()


def test_cleanup_removes_expired_entries_and_stray_temps(
    spark: Invoke, fill: Fill, cache_dir: Path
) -> None:
    fill(2, ttl_seconds=0.001, start=0)
    fill(3, ttl_seconds=3600, start=10)
    folder = cache_dir / "openai" / "gpt-4o-mini"
    stray = folder / f".{'a' * 64}.999999999.abcd1234.tmp"  # a writer pid that cannot exist
    stray.write_bytes(b"{")
    time.sleep(0.01)
    result = spark("cache", "cleanup", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "expired_removed": 2,
        "temp_files_removed": 1,
        "checked": 5,
    }
    assert not stray.exists()
    assert len(list(folder.glob("*.json"))) == 3
    again = spark("cache", "cleanup")
    assert "Removed 0 expired entries and 0 stray temp files (checked 3 entries" in again.stdout


def _hit_and_miss(cache_dir: Path) -> None:
    """One miss then one hit through the real manager, so the ledger has figures."""
    config = CacheConfig(enabled=True, cache_dir=cache_dir)
    manager = CacheManager(cache_dir, config)
    bound = manager.bind(config)
    request = bound.chat_request("openai", "gpt-4o-mini", "ledger question")

    async def call() -> dict[str, Any]:
        return {"text": "ledger answer", "cost_usd": 0.25}

    async def twice() -> None:
        await bound.get_or_call(request, call)
        await bound.get_or_call(request, call)

    asyncio.run(twice())
    manager.counters.ledger.flush()


def test_stats(spark: Invoke, fill: Fill, cache_dir: Path) -> None:
    fill(3)
    fill(1, provider="bedrock", model_id="anthropic.claude-3-haiku-20240307-v1:0")
    before = spark("cache", "stats")
    assert before.exit_code == 0
    assert "4 entries" in before.stdout
    assert "no ledger yet" in before.stdout
    assert json.loads(spark("cache", "stats", "--json").stdout)["hit_rate"] is None
    _hit_and_miss(cache_dir)
    stats = json.loads(spark("cache", "stats", "--json").stdout)
    assert stats["ledger"] is True
    assert stats["total_entries"] == 5
    assert stats["by_provider"]["openai"]["entries"] == 4
    assert stats["by_provider"]["bedrock"]["entries"] == 1
    assert {p: d["provider"] for p, d in stats["by_provider"].items()} == {
        "openai": "openai",
        "bedrock": "bedrock",
    }
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 0.5)
    assert stats["saved_usd"] == pytest.approx(0.25)
    assert stats["spent_usd"] == pytest.approx(0.25)
    (openai,) = [r for r in stats["by_model"] if r["provider"] == "openai"]
    assert (openai["model_id"], openai["entries"], openai["hits"]) == ("gpt-4o-mini", 4, 1)
    table = spark("cache", "stats").stdout
    assert "50.0%" in table
    assert "$0.25" in table
    assert "no ledger yet" not in table


def test_stats_keeps_the_folder_summary_only_for_a_cache_that_writes(
    spark: Invoke, fill: Fill, cache_dir: Path, key_file: Callable[..., str]
) -> None:
    """`spark cache stats` of a writing profile records settled folders for the next call
    (docs/caching.md, "Statistics"); a replaying profile leaves the directory as it is."""
    fill(3)
    an_hour_ago = time.time() - 3600
    for folder in (cache_dir / "openai").iterdir():  # (settled: last changed an hour ago)
        os.utime(folder, (an_hour_ago, an_hour_ago))
    before = sorted(p.name for p in cache_dir.iterdir())
    key_file()
    replayed = spark("cache", "stats", "--profile", "ci", "--json")
    assert replayed.exit_code == 0, replayed.stderr
    assert json.loads(replayed.stdout)["total_entries"] == 3
    assert sorted(p.name for p in cache_dir.iterdir()) == before

    assert json.loads(spark("cache", "stats", "--json").stdout)["total_entries"] == 3
    summary = cache_dir / ".spark-summary.json"
    assert summary.is_file()
    recorded = json.loads(summary.read_text())["folders"]
    assert [(r["entries"], r["model_id"]) for r in recorded.values()] == [(3, "gpt-4o-mini")]
    fill(1, start=3)  # the folder changes: counted again, never the recorded figure
    assert json.loads(spark("cache", "stats", "--json").stdout)["total_entries"] == 4


def test_stats_of_one_alias(spark: Invoke, fill: Fill) -> None:
    fill(3)
    fill(1, provider="bedrock", model_id="anthropic.claude-3-haiku-20240307-v1:0")
    stats = json.loads(spark("cache", "stats", "--model", "claude", "--json").stdout)
    assert stats["total_entries"] == 1
    assert [r["provider"] for r in stats["by_model"]] == ["bedrock"]
    unknown = spark("cache", "stats", "--model", "nope")
    assert unknown.exit_code == 1
    assert "unknown model 'nope'" in unknown.stderr


def test_unreadable_directory_is_one_error_line(
    spark: Invoke, project: Path, cache_dir: Path, fill: Fill
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    fill(1)
    entry = next(cache_dir.rglob("*.json"))
    entry.chmod(0)
    try:
        result = spark("cache", "show", entry.stem)
    finally:
        entry.chmod(0o600)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Permission denied:")
    assert "Traceback" not in result.output
