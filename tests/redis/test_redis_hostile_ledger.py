"""A damaged or hostile ledger in a shared Redis: figures that are no numbers, not finite or
negative, fields and keys that are not Spark's, keys of the wrong type. ``get_stats()``,
``spark cache stats`` and the report go on with what can be read, finite and never negative,
with one warning; an unreachable Redis is still an error (``test_redis_down.py``). A batch is
counted once: what Redis refuses of it is left out, what it refuses whole is retried."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from _redis_support import RedisServer
from click.testing import CliRunner

from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache
from spark.cli import cli

DAY = "2026-01-02"


@pytest.fixture
def config(tmp_path: Path, redis_server: RedisServer, prefix: str) -> CacheConfig:
    return CacheConfig(
        enabled=True, cache_dir=tmp_path, backend="redis", url=redis_server.url, prefix=prefix
    )


def _good_figures(raw: redis.Redis, ledger: str) -> None:
    raw.sadd(f"{ledger}days", DAY)
    raw.hset(f"{ledger}day:{DAY}", "hits\topenai\tgpt-4o", 3)
    raw.hset(f"{ledger}day:{DAY}", "saved\topenai\tgpt-4o", 0.25)


def _hostile_figures(raw: redis.Redis, ledger: str) -> None:
    table = f"{ledger}day:{DAY}"
    raw.hset(table, "misses\topenai\tgpt-4o", "many")
    raw.hset(table, "spent\topenai\tgpt-4o", "nan")
    raw.hset(table, "cache_saved\topenai\tgpt-4o", "-4")
    raw.hset(table, "hits\tbedrock\tclaude", "1e999")
    raw.hset(table, "no tabs", 5)
    raw.hset(table, b"hits\t\xff\tx", 1)
    raw.sadd(f"{ledger}days", "not-a-hash")
    raw.set(f"{ledger}day:not-a-hash", "a string")
    raw.sadd(f"{ledger}days", b"\xff-not-utf-8")
    raw.zadd(f"{ledger}req:hits", {"k-inf": math.inf, "k-good": 2, b"k-\xff": 1})
    raw.hset(f"{ledger}req:info", mapping={"k-inf": "garbage", "k-good": "openai\tgpt\tlater"})


def test_stats_read_what_they_can_finite_and_warn_once(
    config: CacheConfig, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = f"{prefix}ledger:"
    _good_figures(raw, ledger)
    _hostile_figures(raw, ledger)
    manager = CacheManager(config.resolved_dir, config)

    with caplog.at_level(logging.WARNING, logger="spark"):
        totals = manager.get_stats()["all_processes"]
        top = manager.counters.ledger.top_requests()
        manager.get_stats()

    assert (totals["hits"], totals["misses"]) == (3, 0)
    assert totals["saved_cost_usd"] == 0.25
    assert totals["spent_cost_usd"] == totals["provider_cache_saved_usd"] == 0.0
    assert [(row.key, row.hits, row.last_hit) for row in top] == [
        ("k-good", 2, None),
        ("k-\\xff", 1, None),  # (a key that is not UTF-8: shown escaped)
        ("k-inf", 0, None),
    ]
    warnings = [r.getMessage() for r in caplog.records if "cache ledger" in r.getMessage()]
    assert len(warnings) == 1
    assert "ignoring" in warnings[0]


def test_a_ranking_of_the_wrong_type_leaves_the_report_without_it(
    config: CacheConfig,
    raw: redis.Redis,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = f"{prefix}ledger:"
    _good_figures(raw, ledger)
    raw.set(f"{ledger}req:hits", "not a sorted set")
    (tmp_path / "spark.toml").write_text(
        f'[cache]\nenabled = true\nbackend = "redis"\nurl = "{config.url}"\nprefix = "{prefix}"\n'
    )
    monkeypatch.chdir(tmp_path)

    stats = CliRunner().invoke(cli, ["cache", "stats"], catch_exceptions=False)
    report = CliRunner().invoke(
        cli, ["cache", "report", "--html", "r.html"], catch_exceptions=False
    )

    assert stats.exit_code == 0, stats.output
    assert "3" in stats.stdout
    assert report.exit_code == 0, report.output
    assert (tmp_path / "r.html").read_text().count("gpt-4o") >= 1


async def _one_miss_one_hit(bound: BoundCache) -> str:
    async def call() -> dict[str, Any]:
        return {"text": "answer", "cost_usd": 0.25}

    request = bound.chat_request("openai", "gpt-4o", "q")
    for _ in range(2):
        await bound.get_or_call(request, call)
    return request.key


async def test_a_figure_redis_refuses_is_left_out_and_the_batch_is_counted_once(
    config: CacheConfig, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, day = f"{prefix}ledger:", time.strftime("%Y-%m-%d")
    raw.set(f"{ledger}req:info", "not a hash")  # (each HSET of the batch: WRONGTYPE)
    raw.hset(f"{ledger}day:{day}", "spent\topenai\tgpt-4o", "lots")  # (HINCRBYFLOAT: ERR)
    bound = CacheManager(config.resolved_dir, config).bind(config)
    key = await _one_miss_one_hit(bound)

    with caplog.at_level(logging.WARNING, logger="spark"):
        figures = [bound.manager.get_stats()["all_processes"] for _ in range(4)]

    assert [(f["hits"], f["misses"]) for f in figures] == [(1, 1)] * 4, "counted once"
    assert figures[-1]["saved_cost_usd"] == 0.25
    assert raw.hget(f"{ledger}day:{day}", "hits\topenai\tgpt-4o") == b"1"
    assert raw.zscore(f"{ledger}req:hits", key) == 1
    left_out = [r.getMessage() for r in caplog.records if "not counting into" in r.getMessage()]
    assert len(left_out) == 2, left_out  # one for each figure not Spark's, however many flushes
    assert f"{ledger}req:info," in left_out[0] or f"{ledger}req:info," in left_out[1]


async def test_a_batch_redis_refuses_whole_is_retried_and_counted_once(
    own_redis: RedisServer, tmp_path: Path, prefix: str
) -> None:
    config = CacheConfig(
        enabled=True, cache_dir=tmp_path, backend="redis", url=own_redis.url, prefix=prefix
    )
    bound = CacheManager(config.resolved_dir, config).bind(config)
    await _one_miss_one_hit(bound)
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)  # every write is refused: out of memory

    refused = bound.manager.counters.ledger.flush()
    client.config_set("maxmemory", 0)
    figures = [bound.manager.get_stats()["all_processes"] for _ in range(2)]

    assert refused is False
    assert [(f["hits"], f["misses"]) for f in figures] == [(1, 1)] * 2
    client.close()
