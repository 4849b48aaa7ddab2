"""``spark cache ...`` on a Redis-backed spark.toml, and the ledger in Redis across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import redis
from _redis_support import RedisServer, scan_keys
from click.testing import CliRunner, Result

from spark.cache import CacheManager, generate_key
from spark.cache.admin import write_key_file
from spark.cache.bound import BoundCache
from spark.cache.crypto import fingerprint
from spark.cli import cli
from spark.config import load_settings

SPARK_TOML = """\
[cache]
enabled = true
backend = "redis"
url = "{url}"
prefix = "{prefix}"
dir = "local"
ttl_seconds = 3600

[profiles.vault.cache]
encrypt = true
key_file = "secrets/cache.key"
"""


def spark(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def json_of(*args: str) -> Any:
    result = spark(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, prefix: str
) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    text = SPARK_TOML.format(url=redis_server.url, prefix=prefix)
    (directory / "spark.toml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(directory)
    return directory


def bound_of(profile: str | None = None) -> BoundCache:
    config = load_settings(profile=profile).cache_config()
    return CacheManager.get_instance(config=config).bind(config)


def fill(bound: BoundCache, *prompts: str, provider: str = "openai") -> list[str]:
    keys = []
    for prompt in prompts:
        request = bound.chat_request(provider, "gpt-4o-mini", prompt)
        assert bound.save(request, {"text": f"answer to {prompt}", "cost_usd": 0.001})
        keys.append(request.key)
    return keys


def test_stats_ls_show_verify(project: Path, prefix: str) -> None:
    keys = fill(bound_of(), "q1", "q2") + fill(bound_of(), "q3", provider="bedrock")
    stats = json_of("cache", "stats")
    assert stats["total_entries"] == 3
    assert prefix in stats["store"]
    assert stats["by_provider"]["openai"]["entries"] == 2
    listed = json_of("cache", "ls")
    assert sorted(e["key"] for e in listed) == sorted(keys)
    assert {e["path"] for e in listed} >= {f"openai/gpt-4o-mini/{keys[0]}"}
    shown = json_of("cache", "show", keys[0][:10])
    assert shown["payload"]["response"]["text"] == "answer to q1"
    assert shown["size"] > 100
    verified = json_of("cache", "verify")
    assert (verified["checked"], verified["ok"]) == (3, 3)
    text = spark("cache", "stats").stdout
    assert text.startswith("redis://127.0.0.1:")
    assert "3 entries" in text.splitlines()[0]


def test_clear_and_cleanup(project: Path, raw: redis.Redis, prefix: str) -> None:
    fill(bound_of(), "a", "b")
    fill(bound_of(), "c", provider="bedrock")
    result = spark("cache", "clear", "--provider", "bedrock", "--yes")
    assert result.exit_code == 0
    assert "Removed 1 entry (bedrock)" in result.stdout
    raw.delete(
        f"{prefix}e:openai/gpt-4o-mini/{bound_of().chat_request('openai', 'gpt-4o-mini', 'a').key}"
    )
    cleaned = json_of("cache", "cleanup")
    assert cleaned["expired_removed"] == 1  # the entry Redis no longer has: out of the index
    assert json_of("cache", "clear", "--yes")["removed"] == 1
    assert json_of("cache", "stats")["total_entries"] == 0
    assert [k for k in scan_keys(raw, prefix) if ":ledger:" not in k] == []


def test_rotate_key_keeps_the_ttl(project: Path, raw: redis.Redis, prefix: str) -> None:
    old = generate_key()
    write_key_file(project / "secrets" / "cache.key", [old], overwrite=False)
    keys = fill(bound_of("vault"), "secret one", "secret two")
    new = generate_key()
    result = spark("cache", "rotate-key", "--profile", "vault", "--new-key", new, "--yes")
    assert result.exit_code == 0, result.output
    assert "2 re-encrypted" in result.stdout
    for key in keys:
        name = f"{prefix}e:openai/gpt-4o-mini/{key}"
        assert 3_500_000 < raw.pttl(name) <= 3_600_000
        envelope = json.loads(raw.get(name) or b"")
        assert envelope["key_fingerprint"] == fingerprint(new)
    shown = json_of("cache", "show", "--profile", "vault", keys[0])
    assert shown["payload"]["response"]["text"] == "answer to secret one"


def test_a_second_rotation_on_the_fleet_is_refused_while_one_holds_the_claim(
    project: Path, raw: redis.Redis, prefix: str
) -> None:
    old = generate_key()
    write_key_file(project / "secrets" / "cache.key", [old], overwrite=False)
    keys = fill(bound_of("vault"), "secret one")
    other_machine = CacheManager(project / "local", load_settings(profile="vault").cache_config())
    token = other_machine.claims.take("spark-rotate-key")  # (its rotation is running)
    assert token

    rotate = ("cache", "rotate-key", "--profile", "vault", "--yes", "--new-key")
    entry = f"{prefix}e:openai/gpt-4o-mini/{keys[0]}"

    refused = spark(*rotate, generate_key())
    saved_then = (project / "secrets" / "cache.key").read_text().split()
    sealed_then = json.loads(raw.get(entry) or b"")["key_fingerprint"]
    other_machine.claims.release("spark-rotate-key", token)
    done = spark(*rotate, generate_key())

    assert refused.exit_code == 1
    assert "another `spark cache rotate-key` is running on redis://" in refused.stderr
    assert (saved_then, sealed_then) == ([old], fingerprint(old))  # nothing saved or sealed
    assert done.exit_code == 0, done.output  # (once the claim is gone)
    assert json.loads(raw.get(entry) or b"")["key_fingerprint"] != fingerprint(old)


def test_explain_prune_and_report(project: Path) -> None:
    bound = bound_of()
    [kept, _] = fill(bound, "kept", "dropped")
    hit = spark(
        "cache", "explain", '{"provider": "openai", "model_id": "gpt-4o-mini", "messages": "kept"}'
    )
    assert hit.exit_code == 0
    assert hit.stdout.startswith("HIT: openai/gpt-4o-mini/")
    miss = spark(
        "cache", "explain", '{"provider": "openai", "model_id": "gpt-4o-mini", "messages": "kepx"}'
    )
    assert miss.exit_code == 1
    assert "Nearest stored entry" in miss.stdout
    bound.manager.used_keys.clear()
    bound.manager.used_keys.add(kept)
    bound.manager.write_usage_record()
    assert json_of("cache", "prune", "--unused", "--yes")["removed"] == 1
    report = json_of("cache", "report")
    assert report["totals"]["entries"] == 1
    assert "prefix" in report["cache_dir"]


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from spark.cache import CacheConfig, CacheManager

    config = CacheConfig(enabled=True, backend="redis", url=sys.argv[1], prefix=sys.argv[2])
    bound = CacheManager.get_instance(config=config).bind(config)

    async def answer():
        return {"text": "Paris.", "cost_usd": 0.25}

    async def main():
        for question in ("a", "b", "a", "a"):
            request = bound.chat_request("openai", "gpt-4o", question)
            await bound.get_or_call(request, answer)

    asyncio.run(main())
    """
)


def test_the_ledger_in_redis_adds_up_two_processes(
    project: Path, redis_server: RedisServer, prefix: str
) -> None:
    for _ in range(2):
        command = [sys.executable, "-c", SCRIPT, redis_server.url, prefix]
        subprocess.run(command, check=True, timeout=60)
    stats = json_of("cache", "stats")
    assert (stats["hits"], stats["misses"]) == (6, 2)
    assert stats["saved_usd"] == pytest.approx(1.5)
    assert stats["spent_usd"] == pytest.approx(0.5)
    assert stats["hit_rate"] == pytest.approx(0.75)
    manager = CacheManager.get_instance(config=load_settings().cache_config())
    [top, *_] = manager.counters.ledger.top_requests()
    assert top.key == manager.generate_cache_key("openai", "gpt-4o", "a")
    assert (top.hits, top.saved_usd) == (5, pytest.approx(1.25))
    assert manager.get_stats()["all_processes"]["by_model"]["openai/gpt-4o"]["misses"] == 2
