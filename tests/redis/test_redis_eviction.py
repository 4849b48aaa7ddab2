"""Under ``maxmemory`` with ``allkeys-lru`` Redis evicts entries and index sets alike: listings
and statistics then show only entries that exist and never crash, ``spark cache verify
--repair`` indexes again what an evicted index set hid, and ``has_entry`` and ``remove_entry``
find an entry whatever became of its index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from _redis_support import RedisServer, ThreeMasterCluster, scan_keys
from click.testing import CliRunner

from spark.cache import CacheConfig, CacheManager, admin
from spark.cli import cli

ANSWER = "a long answer " * 300  # about 4 KB an entry


@pytest.fixture
def small_redis(redis_binary: str) -> RedisServer:
    server = RedisServer(
        redis_binary, extra=["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]
    ).start()
    yield server  # type: ignore[misc]
    server.stop()


def fill(manager: CacheManager, count: int, model: str = "gpt-4o") -> None:
    bound = manager.bind()
    for n in range(count):
        request = bound.chat_request("openai", model, f"question {n}")
        bound.save(request, {"text": ANSWER, "cost_usd": 0.001})


def entries_in_redis(client: redis.Redis, prefix: str) -> set[str]:
    return {name[len(prefix) + 2 :] for name in scan_keys(client, prefix + "e:")}


def test_listings_under_eviction_show_only_entries_that_exist(
    small_redis: RedisServer, prefix: str
) -> None:
    config = CacheConfig(enabled=True, backend="redis", url=small_redis.url, prefix=prefix)
    manager = CacheManager(None, config)
    for model in ("gpt-4o", "gpt-4o-mini", "o3"):
        fill(manager, 400, model)  # ~5 MB into 2 MB: most of it is evicted
    client = redis.Redis.from_url(small_redis.url)
    present = entries_in_redis(client, prefix)
    assert 0 < len(present) < 1200, "Redis evicted entries"
    listed = list(admin.list_entries(manager.store))
    assert [info.error for info in listed if info.error] == []
    assert {info.path for info in listed} <= present, "nothing listed that does not exist"
    stats = manager.get_stats()  # (still under pressure: reads evict too)
    assert stats["total_entries"] <= len(entries_in_redis(client, prefix))
    client.config_set("maxmemory", 0)  # the pressure is over: the repair evicts nothing
    present = entries_in_redis(client, prefix)
    indexed = {entry.location for entry in manager.store.walk()}
    missing, _ = manager.store.rebuild_index(repair=True)
    assert missing == len(present - indexed) > 0, "evicted index sets hid entries"
    assert {info.path for info in admin.list_entries(manager.store)} == present
    assert manager.get_stats()["total_entries"] == len(present)
    assert manager.store.rebuild_index() == (0, 0)
    client.close()


def test_verify_reports_and_repairs_an_evicted_index(
    own_redis: RedisServer, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spark.toml").write_text(
        f'[cache]\nenabled = true\nbackend = "redis"\nurl = "{own_redis.url}"\n'
        f'prefix = "{prefix}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    config = CacheConfig(enabled=True, backend="redis", url=own_redis.url, prefix=prefix)
    fill(CacheManager(None, config), 5)
    fill(CacheManager(None, config), 3, "gpt-4o-mini")
    client = redis.Redis.from_url(own_redis.url)
    client.delete(f"{prefix}idx:openai/gpt-4o")  # as allkeys-lru would
    client.delete(f"{prefix}models")

    def spark(*args: str) -> dict[str, object]:
        result = CliRunner().invoke(cli, ["cache", *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        answer: dict[str, object] | list[object] = json.loads(result.stdout)
        return answer if isinstance(answer, dict) else {"entries": answer}

    assert spark("ls")["entries"] == []
    checked = spark("verify")
    assert (checked["checked"], checked["unindexed"], checked["reindexed"]) == (0, 8, 0)
    text = CliRunner().invoke(cli, ["cache", "verify"]).stdout
    assert "8 entries missing from the index" in text
    assert "spark cache verify --repair" in text
    repaired = spark("verify", "--repair")
    assert (repaired["checked"], repaired["ok"], repaired["reindexed"]) == (8, 8, 8)
    assert len(spark("ls")["entries"]) == 8  # type: ignore[arg-type]
    assert spark("stats")["total_entries"] == 8
    client.close()


@pytest.mark.parametrize("damage", ["evicted", "not a set", "index not a set"])
@pytest.mark.parametrize("topology", ["redis", "cluster"])
def test_has_entry_and_remove_entry_find_an_entry_whose_models_index_is_lost(
    request: pytest.FixtureRequest, topology: str, damage: str, prefix: str
) -> None:
    if topology == "cluster":
        cluster: ThreeMasterCluster = request.getfixturevalue("redis_cluster")
        url, client, shard = cluster.url, cluster.client(), "{%s}"
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url, client, shard = server.url, redis.Redis.from_url(server.url), ""
    config = CacheConfig(
        enabled=True, backend="redis", url=url, prefix=prefix, cluster=topology == "cluster"
    )
    writer = CacheManager(None, config)
    fill(writer, 2)
    key = writer.bind().chat_request("openai", "gpt-4o", "question 0").key
    tag = shard % key[:2] if shard else ""
    if damage == "index not a set":
        client.delete(f"{prefix}{tag}idx:openai/gpt-4o")
        client.set(f"{prefix}{tag}idx:openai/gpt-4o", "not Spark's")
    else:
        client.delete(f"{prefix}{tag}models")  # as allkeys-lru would
    if damage == "not a set":
        client.rpush(f"{prefix}{tag}models", "not Spark's")
    CacheManager.reset_instances()
    other = CacheManager(None, config)  # another process: it never used the model

    assert writer.has_entry(key)  # (the writer knows the model; the other one SCANs)
    assert other.has_entry(key)
    assert other.remove_entry(key)
    assert not client.exists(f"{prefix}{tag}e:openai/gpt-4o/{key}")
    assert not other.has_entry(key)
    assert not writer.remove_entry(key)
    client.close()
