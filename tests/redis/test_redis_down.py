"""Statistics and every ``spark cache`` command with Redis down (killed) or hung (SIGSTOP): a
``SparkError`` that names the server, within the configured timeout: never a raw client
exception, never a hang."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from _redis_support import RedisServer
from click.testing import CliRunner

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cli import cli
from spark.errors import CacheError


def manager_of(server: RedisServer, prefix: str, **changes: object) -> CacheManager:
    config = CacheConfig(
        enabled=True,
        backend="redis",
        url=server.url,
        prefix=prefix,
        **changes,  # type: ignore[arg-type]
    )
    return CacheManager(None, config)


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_get_stats_with_redis_down_is_a_cache_error_naming_the_server(
    own_redis: RedisServer, prefix: str, fault: str
) -> None:
    manager = manager_of(own_redis, prefix, timeout_ms=200)
    assert manager.get_stats()["total_entries"] == 0  # connected
    own_redis.kill() if fault == "killed" else own_redis.pause()
    try:
        for _ in range(2):  # the failure, then with the circuit open
            started = time.perf_counter()
            with pytest.raises(CacheError, match=f"Redis redis://127.0.0.1:{own_redis.port}/0"):
                manager.get_stats()
            assert time.perf_counter() - started < 0.5, "one timeout at most"
        for call in (
            manager.clear_all,
            manager.cleanup_expired,
            lambda: manager.has_entry("ab" * 32),
        ):
            with pytest.raises(CacheError, match="is unavailable"):
                call()
    finally:
        own_redis.resume() if fault == "hung" else None


COMMANDS = [
    ["cache", "stats"],
    ["cache", "ls"],
    ["cache", "show", "abcdef0123"],
    ["cache", "clear", "--yes"],
    ["cache", "cleanup"],
    ["cache", "verify"],
    ["cache", "rotate-key", "--new-key", generate_key(), "--yes"],
    ["cache", "prune", "--unused", "--yes"],
    ["cache", "report"],
]


@pytest.fixture
def down_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_redis: RedisServer, prefix: str
) -> RedisServer:
    (tmp_path / "spark.toml").write_text(
        f'[cache]\nenabled = true\nbackend = "redis"\nurl = "{own_redis.url}"\n'
        f'prefix = "{prefix}"\ndir = "local"\nencrypt = true\n',
        encoding="utf-8",
    )
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / ".spark-last-run.json").write_text('{"keys": []}', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    return own_redis


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[1])
def test_every_command_with_redis_killed_says_so(
    down_project: RedisServer, command: list[str]
) -> None:
    down_project.kill()
    started = time.perf_counter()
    result = CliRunner().invoke(cli, command, catch_exceptions=False)
    assert time.perf_counter() - started < 3
    assert result.exit_code == 1, result.output
    assert f"redis://127.0.0.1:{down_project.port}/0" in result.stderr
    assert "unavailable" in result.stderr
    assert "Traceback" not in result.output
    assert "unexpected" not in result.stderr


def test_a_command_on_a_hung_redis_gives_up_after_one_admin_timeout(
    down_project: RedisServer,
) -> None:
    down_project.pause()
    try:
        started = time.perf_counter()
        result = CliRunner().invoke(cli, ["cache", "ls"], catch_exceptions=False)
        took = time.perf_counter() - started
    finally:
        down_project.resume()
    assert result.exit_code == 1
    assert "is unavailable" in result.stderr
    assert "Check that the server is running" in result.stderr
    assert took < 5, "bulk commands allow each reply 2 s: one timeout, then the open circuit"


def test_unreachable_sentinels_cost_one_timeout_not_the_client_retries(
    tmp_path: Path, prefix: str
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: every Sentinel refuses
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = CacheConfig(
        enabled=True,
        backend="redis",
        sentinel=[f"127.0.0.1:{port}"],
        service="spark-test",
        prefix=prefix,
        timeout_ms=200,
    )
    manager = CacheManager(tmp_path / "local", config)
    started = time.perf_counter()
    with pytest.raises(CacheError, match=f"Sentinel 127.0.0.1:{port}"):
        manager.get_stats()
    assert time.perf_counter() - started < 1.0  # (redis-py's own retries took 7.9 s)
    started = time.perf_counter()
    manager.counters.ledger.record("openai", "gpt-4o", hit=True, cost=0.01)
    manager.counters.ledger.flush()  # fails (it is retried later), within the timeout
    assert time.perf_counter() - started < 1.0
