"""What the Redis store keeps where: key layout, native TTLs, index sets, the cross-process claim,
the lazily imported client and the password sources."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from _redis_support import RedisServer, scan_keys
from click.testing import CliRunner

import spark.cache.stores
from spark.cache import CacheConfig, CacheManager
from spark.cache.codec import EntryMeta, encode_entry
from spark.cache.stores.redis import RedisStore
from spark.cache.stores.tiered import TieredStore
from spark.cli import cli
from spark.errors import ConfigError

KEY = "ab" * 32


def _entry(expires_at: float) -> bytes:
    """A real entry file of ``KEY`` that expires at ``expires_at``."""
    meta = EntryMeta(KEY, "openai", "gpt-4o", expires_at - 60, expires_at)
    return encode_entry(meta, {"request": {}, "response": {"text": "x"}}, None)


def config_for(url: str, prefix: str, **changes: object) -> CacheConfig:
    return CacheConfig(enabled=True, backend="redis", url=url, prefix=prefix, **changes)  # type: ignore[arg-type]


def store_of(url: str, prefix: str, **changes: object) -> RedisStore:
    store = CacheManager(None, config_for(url, prefix, **changes)).store
    assert isinstance(store, RedisStore)
    return store


def test_layout_entry_index_and_native_ttl(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    store = store_of(redis_server.url, prefix)
    path = store.location("bedrock", "anthropic.claude-3:0", KEY)
    assert path == f"bedrock/anthropic.claude-3%3A0/{KEY}"
    store.write(path, b"{}", expires_at=time.time() + 60)
    assert scan_keys(raw, prefix) == [
        f"{prefix}e:bedrock/anthropic.claude-3%3A0/{KEY}",
        f"{prefix}idx:bedrock/anthropic.claude-3%3A0",
        f"{prefix}models",
    ]
    assert raw.smembers(f"{prefix}models") == {b"bedrock/anthropic.claude-3%3A0"}
    assert raw.smembers(f"{prefix}idx:bedrock/anthropic.claude-3%3A0") == {KEY.encode()}
    assert 59_000 < raw.pttl(f"{prefix}e:{path}") <= 60_000
    store.write(path, b"{}")  # no expires_at given, none in the bytes: no TTL
    assert raw.pttl(f"{prefix}e:{path}") == -1
    assert store.read(path) == (b"{}", (0, 0, 2))
    assert store.find(KEY) == path
    assert store.remove(path)
    assert not store.remove(path)
    assert store.read(path) is None


def test_a_rewrite_keeps_the_envelope_expiry(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    store = store_of(redis_server.url, prefix)
    path = store.location("openai", "gpt-4o", KEY)
    expires = time.time() + 30
    store.write(path, _entry(expires))
    assert 29_000 < raw.pttl(f"{prefix}e:{path}") <= 30_000
    store.write(path, _entry(time.time() - 1))
    assert store.read(path) is None  # already expired: not kept


def test_walk_skips_and_forgets_entries_redis_expired(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    store = store_of(redis_server.url, prefix)
    keys = [f"{n:064x}" for n in range(1200)]  # more than one SSCAN batch
    for key in keys:
        store.write(store.location("openai", "gpt-4o", key), b"x" * 10)
    raw.delete(f"{prefix}e:openai/gpt-4o/{keys[0]}", f"{prefix}e:openai/gpt-4o/{keys[1]}")
    walked = list(store.walk())
    assert len(walked) == 1198
    assert len({e.key for e in walked}) == 1198
    assert {e.size for e in walked} == {10}
    assert raw.scard(f"{prefix}idx:openai/gpt-4o") == 1198  # dangling members were dropped
    assert list(store.walk(provider="bedrock")) == []
    assert len(list(store.walk("openai", "gpt-4o"))) == 1198


def test_cleanup_forgets_empty_models(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    store = store_of(redis_server.url, prefix)
    path = store.location("gemini", "gemini-2.0-flash", KEY)
    store.write(path, b"{}", expires_at=time.time() + 0.05)
    time.sleep(0.1)
    assert store.cleanup_expired() == 1
    assert scan_keys(raw, prefix) == []


def test_claims_are_exclusive_expire_and_are_released_only_by_their_holder(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    store = store_of(redis_server.url, prefix, lock_seconds=0.2)
    token = store.try_lock(KEY)
    assert token
    assert store.try_lock(KEY) is None
    assert 0 < raw.pttl(f"{prefix}lock:{KEY}") <= 200
    store.unlock(KEY, "not-the-token")
    assert store.try_lock(KEY) is None, "another process's token never releases our claim"
    store.unlock(KEY, token)
    second = store.try_lock(KEY)
    assert second
    time.sleep(0.25)
    third = store.try_lock(KEY)
    assert third, "an expired claim (a crashed holder) is taken over"
    store.unlock(KEY, second)  # the old holder comes back late: the new claim stays
    assert raw.get(f"{prefix}lock:{KEY}") == third.encode()


def test_one_manager_per_url_and_prefix(redis_server: RedisServer, prefix: str) -> None:
    config = config_for(redis_server.url, prefix)
    manager = CacheManager.get_instance(config=config)
    assert CacheManager.get_instance(config=config) is manager
    assert (
        CacheManager.get_instance(config=config_for(redis_server.url, prefix + "x")) is not manager
    )
    tiered = CacheManager.get_instance(config=config_for(redis_server.url, prefix, local_tier=True))
    assert tiered is not manager
    assert isinstance(tiered.store, TieredStore)
    assert tiered.store.describe().endswith(f"(local tier {tiered.cache_dir})")


def test_import_spark_and_the_disk_cache_do_not_import_redis(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, asyncio
        import spark, spark.cache, spark.models, spark.cli
        from spark.cache import CacheConfig, CacheManager
        config = CacheConfig(enabled=True, cache_dir={str(tmp_path)!r})
        bound = CacheManager.get_instance(config=config).bind(config)
        async def answer():
            return {{"text": "hi"}}
        asyncio.run(bound.get_or_call(bound.chat_request("openai", "gpt-4o", "q"), answer))
        assert "redis" not in sys.modules, "redis was imported"
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_missing_redis_package_is_a_config_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, prefix: str
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` now fails
    monkeypatch.delitem(sys.modules, "spark.cache.stores.redis")
    with pytest.raises(
        ConfigError,
        match=r"pip install redis \(in a Spark checkout: pip install -e '\.\[redis\]'\)",
    ):
        spark.cache.stores.open_store(config_for(redis_server.url, prefix), Path("unused"))


def test_password_from_the_url_or_from_password_env(
    redis_binary: str, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    server = RedisServer(redis_binary, password="s3cret-pw").start()
    try:
        plain = f"redis://127.0.0.1:{server.port}/0"
        in_url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
        store = store_of(in_url, prefix)
        store.write(store.location("openai", "gpt-4o", KEY), b"{}")
        assert "s3cret-pw" not in store.describe()
        assert "***" in store.describe()
        with pytest.raises(ConfigError, match="SPARK_REDIS_PASSWORD"):
            store_of(plain, prefix, password_env="SPARK_REDIS_PASSWORD")
        monkeypatch.setenv("SPARK_REDIS_PASSWORD", "s3cret-pw")
        from_env = store_of(plain, prefix, password_env="SPARK_REDIS_PASSWORD")
        assert from_env.find(KEY) is not None
        assert "s3cret-pw" not in from_env.describe()
    finally:
        server.stop()


async def test_a_200_mb_value_is_refused_by_its_length_and_takes_nothing_down(
    own_redis: RedisServer, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who can write to the server can plant a huge value at an entry's name. The call is
    answered by the provider, the value is never fetched (fetching it took the whole timeout and
    opened the circuit: every call missed), the other entries keep hitting, and ``verify``
    names it."""
    config = config_for(own_redis.url, prefix)
    bound = CacheManager(None, config).bind(config)
    huge, other = (bound.chat_request("openai", "gpt-4o", p) for p in ("huge", "other"))
    assert bound.save(huge, {"text": "stored"})
    assert bound.save(other, {"text": "kept"})
    location = bound.manager.store.location("openai", "gpt-4o", huge.key)
    name = bound.manager.store.entry_name(location)  # type: ignore[attr-defined]
    client = redis.Redis.from_url(own_redis.url)
    client.setrange(name, 200 * 2**20 - 1, b"\0")  # the entry, then zeros up to 200 MB
    sent_before = int(client.info("stats")["total_net_output_bytes"])

    async def provider() -> dict[str, object]:
        return {"text": "fresh", "usage": {"input_tokens": 1, "output_tokens": 1}}

    result = await bound.get_or_call(huge, provider)
    sent = int(client.info("stats")["total_net_output_bytes"]) - sent_before
    assert (result.response["text"], result.cached) == ("fresh", False)
    assert sent < 2**16, f"the server sent {sent / 2**20:.1f} MB"
    kept = await bound.get_or_call(other, provider)
    assert (kept.response["text"], kept.cached) == ("kept", True)

    client.setrange(name, 200 * 2**20 - 1, b"\0")  # (the fresh answer replaced it)
    toml = f'[cache]\nenabled = true\nbackend = "redis"\nurl = "{own_redis.url}"\n'
    (tmp_path / "spark.toml").write_text(toml + f'prefix = "{prefix}"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    verified = CliRunner().invoke(cli, ["cache", "verify", "--json"])
    assert verified.exit_code == 1, verified.output
    [problem] = json.loads(verified.stdout)["problems"]
    assert huge.key in problem["path"], problem
    assert "over the limit" in problem["reason"], problem
    CacheManager.reset_instance()
