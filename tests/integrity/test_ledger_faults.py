"""The ledger (hits, misses and dollars of every process) under faults: one failed write never
stops the counting for good, and amounts that are not finite non-negative numbers never reach
the sums. Mocks only inject the fault (a full disk on the first write)."""

from __future__ import annotations

import errno
import json
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _fuzzlib import GPT, FuzzCache, ProviderStub, Target, seed_cache

from spark.cache import CacheConfig, CacheManager
from spark.cache.ledger import LEDGER_NAME, Ledger, SQLiteLedger, close_all_ledgers, read_ledger

Cli = Callable[..., Any]

FAULTS = {
    "ENOSPC": lambda: OSError(errno.ENOSPC, "No space left on device"),
    "sqlite full": lambda: sqlite3.OperationalError("database or disk is full"),
}


def _totals(root: Path) -> tuple[int, int, float, float]:
    rows = read_ledger(root)
    return (
        sum(r.hits for r in rows),
        sum(r.misses for r in rows),
        sum(r.saved_usd for r in rows),
        sum(r.spent_usd for r in rows),
    )


async def _hit(cache: FuzzCache, manager: CacheManager) -> None:
    entry = cache.entries[0]
    result = await manager.get_or_call(entry.request, ProviderStub(None), cache.config)
    assert result.cached


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_one_failed_ledger_write_does_not_stop_the_counting(
    fault: str, plain_config: CacheConfig, monkeypatch: pytest.MonkeyPatch, spark_cli: Cli
) -> None:
    cache = await seed_cache("plain", plain_config, ["ledger question"])
    close_all_ledgers()  # what seeding counted is on disk now
    hits_before = _totals(cache.root)[0]
    real_add = SQLiteLedger.add
    failed: list[BaseException] = []

    def add_failing_once(self: SQLiteLedger, rows: Any, request_rows: Any) -> None:
        if not failed:
            failed.append(FAULTS[fault]())
            raise failed[0]
        real_add(self, rows, request_rows)

    monkeypatch.setattr(SQLiteLedger, "add", add_failing_once)
    manager = CacheManager(cache.root, plain_config)

    for _ in range(3):
        await _hit(cache, manager)
    close_all_ledgers()  # the write fails: the disk is full
    assert failed, "the fault was never injected"
    for _ in range(2):  # the disk has room again
        await _hit(cache, manager)
    close_all_ledgers()

    assert _totals(cache.root)[0] == hits_before + 5
    assert manager.get_stats()["all_processes"]["hits"] == hits_before + 5
    stats = spark_cli("cache", "stats", "--json", "--dir", str(cache.root))
    assert json.loads(stats.stdout)["hits"] == hits_before + 5


async def test_a_ledger_whose_writes_keep_failing_keeps_its_counts_for_later(
    plain_config: CacheConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = await seed_cache("plain", plain_config, ["ledger question"])
    close_all_ledgers()
    hits_before = _totals(cache.root)[0]
    real_add = SQLiteLedger.add
    down = {"full": True}

    def add(self: SQLiteLedger, rows: Any, request_rows: Any) -> None:
        if down["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_add(self, rows, request_rows)

    monkeypatch.setattr(SQLiteLedger, "add", add)
    manager = CacheManager(cache.root, plain_config)
    for _ in range(4):
        await _hit(cache, manager)
        close_all_ledgers()  # fails every time
    down["full"] = False
    close_all_ledgers()

    assert _totals(cache.root)[0] == hits_before + 4


def test_non_finite_and_negative_amounts_are_refused_where_they_enter(tmp_path: Path) -> None:
    ledger = Ledger(SQLiteLedger(tmp_path))
    bad = [math.nan, math.inf, -math.inf, -1.0, -1e-9]
    for cost in [0.25, *bad]:
        ledger.record("openai", GPT, hit=True, cost=cost, key="a" * 64)
    for cost in [0.5, *bad]:
        ledger.record("openai", GPT, hit=False, cost=cost)
    ledger.flush()

    (row,) = ledger.rows()
    assert (row.hits, row.misses) == (6, 6)  # the lookups count; only the amounts are refused
    assert row.saved_usd == pytest.approx(0.25)
    assert row.spent_usd == pytest.approx(0.5)
    (top,) = ledger.top_requests()
    assert math.isfinite(top.saved_usd)
    assert top.saved_usd == pytest.approx(0.25)


def test_huge_finite_amounts_cannot_overflow_the_sums(tmp_path: Path) -> None:
    """Each of these is finite, but their sum is not: the sums must stay finite (an amount no
    call can cost is refused where it enters, like NaN)."""
    ledger = Ledger(SQLiteLedger(tmp_path))
    for _ in range(3):
        ledger.record("openai", GPT, hit=True, cost=1e308, key="b" * 64)
        ledger.record("openai", GPT, hit=False, cost=1e308)
    ledger.flush()

    (row,) = ledger.rows()
    assert math.isfinite(row.saved_usd)
    assert math.isfinite(row.spent_usd)
    assert (row.hits, row.misses) == (3, 3)


@pytest.mark.parametrize("cost", [math.nan, math.inf, -math.inf, -2.0])
async def test_a_provider_answer_with_a_bad_cost_keeps_the_stats_finite(
    cost: float, plain_config: CacheConfig
) -> None:
    manager = CacheManager(plain_config.resolved_dir, plain_config)
    request = manager.bind(plain_config).chat_request("openai", GPT, f"costs {cost}")
    answer = {"text": "an answer", "usage": {"input_tokens": 1, "output_tokens": 1}}

    first = await manager.get_or_call(request, ProviderStub({**answer, "cost_usd": cost}))
    second = await manager.get_or_call(request, ProviderStub({**answer, "cost_usd": 0.125}))

    assert first.response["text"] == second.response["text"] == "an answer"
    stats = manager.get_stats()
    for name in ("saved_cost_usd", "spent_cost_usd"):
        assert math.isfinite(stats[name]), stats
        assert math.isfinite(stats["all_processes"][name]), stats
    assert stats["all_processes"]["spent_cost_usd"] in (0.0, 0.125)
    assert stats["all_processes"]["saved_cost_usd"] == 0.0


async def test_hits_of_a_huge_stored_cost_keep_get_stats_finite(
    plain_config: CacheConfig,
) -> None:
    """An entry edited to cost 1e308 (a finite, valid-looking amount) hit twice."""
    cache = await seed_cache("plain", plain_config, ["expensive question"])
    entry = cache.entries[0]
    target = Target(cache, entry)
    payload = json.loads(json.dumps(target.payload))
    payload["response"]["cost_usd"] = 1e308
    entry.path.write_bytes(target.with_payload(payload))
    manager = CacheManager(cache.root, plain_config)

    for _ in range(2):
        await manager.get_or_call(entry.request, ProviderStub({"text": "fresh"}), plain_config)

    stats = manager.get_stats()
    assert math.isfinite(stats["saved_cost_usd"]), stats["saved_cost_usd"]
    assert math.isfinite(stats["all_processes"]["saved_cost_usd"])


async def test_a_garbage_ledger_file_breaks_nothing(
    plain_config: CacheConfig, spark_cli: Cli
) -> None:
    cache = await seed_cache("plain", plain_config, ["ledger question"])
    close_all_ledgers()
    (cache.root / LEDGER_NAME).write_bytes(b"\x00\xffnot a database" * 100)
    manager = CacheManager(cache.root, plain_config)

    await _hit(cache, manager)
    stats = manager.get_stats()
    close_all_ledgers()

    assert stats["hits"] == 1
    for command in (["stats"], ["stats", "--json"], ["report", "--json"]):
        spark_cli("cache", *command, "--dir", str(cache.root))
