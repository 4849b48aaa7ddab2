"""The ledger counts hits, misses and dollars per model across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spark.cache import CacheConfig, CacheManager
from spark.cache.ledger import LEDGER_NAME, Ledger, read_ledger, read_top_requests

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from spark.cache import CacheConfig, CacheManager

    config = CacheConfig(enabled=True, cache_dir=sys.argv[1])
    bound = CacheManager.get_instance(config.resolved_dir, config).bind(config)

    async def answer():
        return {"text": "Paris.", "cost_usd": 0.25}

    async def main():
        for question in ("a", "b", "a", "a"):
            request = bound.chat_request("openai", "gpt-4o", question)
            await bound.get_or_call(request, answer)

    asyncio.run(main())
    """
)


def run_process(cache_dir: Path) -> None:
    subprocess.run([sys.executable, "-c", SCRIPT, str(cache_dir)], check=True, timeout=60)


def test_two_processes_add_up_in_the_ledger(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    run_process(cache_dir)  # misses a, b; hits a, a
    run_process(cache_dir)  # hits all four
    [row] = read_ledger(cache_dir)
    assert (row.provider, row.model_id) == ("openai", "gpt-4o")
    assert (row.hits, row.misses) == (6, 2)
    assert row.spent_usd == pytest.approx(0.5)
    assert row.saved_usd == pytest.approx(1.5)
    assert row.hit_rate == pytest.approx(0.75)
    stats = CacheManager(cache_dir).get_stats()
    assert stats["hits"] == 0, "this process's own counters"
    assert stats["all_processes"]["hits"] == 6
    assert stats["all_processes"]["saved_cost_usd"] == pytest.approx(1.5)
    assert stats["all_processes"]["by_model"]["openai/gpt-4o"]["misses"] == 2
    assert stats["total_entries"] == 2, "the ledger is not an entry"


def test_ledger_is_kept_out_of_git_and_out_of_entries(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    run_process(cache_dir)
    assert (cache_dir / LEDGER_NAME).exists()
    assert ".spark-*" in (cache_dir / ".gitignore").read_text().splitlines()
    manager = CacheManager(cache_dir)
    assert manager.clear_all() == 2
    assert read_ledger(cache_dir), "clearing entries keeps the history"


async def test_hits_are_batched_not_written_one_by_one(tmp_path: Path) -> None:
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "c")
    manager = CacheManager.get_instance(config.resolved_dir, config)
    bound = manager.bind(config)
    request = bound.chat_request("gemini", "g", "hi")

    async def answer() -> dict[str, object]:
        return {"text": "hello", "cost_usd": 0.01}

    await bound.get_or_call(request, answer)
    for _ in range(100):
        await bound.get_or_call(request, answer)
    assert read_ledger(tmp_path / "c") == [], "nothing written yet: counts wait for the flush"
    manager.counters.ledger.flush()
    [row] = read_ledger(tmp_path / "c")
    assert (row.hits, row.misses) == (100, 1)
    assert row.saved_usd == pytest.approx(1.0)


def test_unwritable_ledger_is_one_warning_and_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ledger = Ledger(blocker / "cache")
    ledger.record("openai", "m", hit=True, cost=1.0)
    ledger.flush()
    ledger.record("openai", "m", hit=True, cost=1.0)
    ledger.flush()
    warnings = [r for r in caplog.records if "ledger" in r.getMessage()]
    assert len(warnings) == 1


def test_by_day_rows_for_reports(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record("openai", "m", hit=False, cost=0.5)
    ledger.record("openai", "m", hit=True, cost=0.5)
    ledger.flush()
    [row] = read_ledger(tmp_path, by_day=True)
    assert len(row.day) == 10
    assert json.loads(json.dumps(row.__dict__))["hits"] == 1


def test_top_repeated_requests(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    run_process(cache_dir)
    run_process(cache_dir)
    top = read_top_requests(cache_dir)
    assert [row.hits for row in top] == [5, 1]  # "a": 2 hits in the first run, 3 in the second
    assert top[0].saved_usd == pytest.approx(1.25)
    assert top[0].provider == "openai"
    assert top[0].last_hit is not None
