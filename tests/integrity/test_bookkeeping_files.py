"""Hostile bookkeeping files in a cache root: the ledger, its journals, the run record.

A committed cache may hold a symlink, a FIFO or a device where Spark keeps its ledger
(``.spark-ledger.sqlite``) or the record of the last recording run (``.spark-last-run.json``).
None is followed or waited on: the ledger writes nothing outside the cache directory and the
calls and ``spark cache stats`` go on; ``prune --unused`` refuses a record it cannot trust with
a clear error, in bounded time, and deletes nothing.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path

import pytest
from _fuzzlib import run_cli, seed_cache, within

from spark.cache import CacheConfig, CacheManager
from spark.cache.ledger.batch import close_all_ledgers
from spark.errors import CacheError

LEDGER = ".spark-ledger.sqlite"
RECORD = ".spark-last-run.json"


@pytest.mark.parametrize("name", [LEDGER, LEDGER + "-journal"])
async def test_a_symlinked_ledger_or_journal_writes_nothing_outside(
    plain_config: CacheConfig, tmp_path: Path, name: str
) -> None:
    root = plain_config.resolved_dir
    root.mkdir(parents=True)
    outside = tmp_path / "outside.db"  # someone else's database
    with sqlite3.connect(outside) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    db.close()
    before = outside.read_bytes()
    (root / name).symlink_to(outside)
    beside = sorted(tmp_path.iterdir())

    cache = await seed_cache("ledger", plain_config, ["q0", "q1"])
    manager = CacheManager(root, plain_config)
    for entry in cache.entries:  # hits, counted in the ledger
        assert (await manager.get_or_call(entry.request, _never, plain_config)).cached
    stats = manager.get_stats()
    close_all_ledgers()  # (what the process's exit does: every ledger flushed)
    result, problems = run_cli("cache", "stats", "--dir", str(root))

    assert outside.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == beside
    assert stats["total_entries"] == 2
    assert (problems, result.exit_code) == ([], 0)


async def test_a_dangling_ledger_symlink_creates_no_file(
    plain_config: CacheConfig, tmp_path: Path
) -> None:
    root = plain_config.resolved_dir
    root.mkdir(parents=True)
    (root / LEDGER).symlink_to(tmp_path / "created.db")

    await seed_cache("ledger", plain_config, ["q0"])
    CacheManager(root, plain_config).get_stats()
    close_all_ledgers()

    assert not (tmp_path / "created.db").exists()


async def _never() -> dict[str, object]:
    raise AssertionError("a hit was expected")


def _plant_record(root: Path, kind: str, tmp_path: Path) -> None:
    record = root / RECORD
    if kind == "symlink to /dev/zero":
        record.symlink_to("/dev/zero")
    elif kind == "symlink to a record":
        outside = tmp_path / "record.json"
        outside.write_text(json.dumps({"keys": []}))
        record.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(record)
    elif kind == "folder":
        record.mkdir()
    else:  # keys that are not a list of keys (a string would spare only its letters)
        record.write_text(json.dumps({"finished_at": 0, "keys": "abc"}))


@pytest.mark.parametrize(
    "kind", ["symlink to /dev/zero", "symlink to a record", "fifo", "folder", "keys not keys"]
)
async def test_prune_refuses_a_hostile_run_record_and_deletes_nothing(
    plain_config: CacheConfig, tmp_path: Path, kind: str
) -> None:
    cache = await seed_cache("record", plain_config, ["q0", "q1"])
    root = plain_config.resolved_dir
    _plant_record(root, kind, tmp_path)
    manager = CacheManager(root, plain_config)

    with pytest.raises(CacheError, match="unreadable run record"):
        within(10, manager.prune_unused)
    result, problems = within(
        10, lambda: run_cli("cache", "prune", "--unused", "--yes", "--dir", str(root))
    )

    assert problems == []
    assert result.exit_code == 1
    assert "unreadable run record" in result.stderr
    assert all(entry.path.exists() for entry in cache.entries)


async def test_a_ledger_with_damaged_figures_gives_finite_stats(
    plain_config: CacheConfig, caplog: pytest.LogCaptureFixture
) -> None:
    cache = await seed_cache("figures", plain_config, ["q0"])
    root = plain_config.resolved_dir
    manager = CacheManager(root, plain_config)
    assert (await manager.get_or_call(cache.entries[0].request, _never, plain_config)).cached
    close_all_ledgers()  # (the hit is in the ledger file now)
    before = CacheManager(root, plain_config).get_stats()["all_processes"]
    with sqlite3.connect(root / LEDGER) as db:  # another writer's (or a damaged disk's) rows
        rows = [("openai", "bad", 1e999, -3, "x", 1e300), ("openai", "worse", 2**62, 0, 5, 1)]
        db.executemany(
            "INSERT INTO usage (day, provider, model_id, hits, misses, saved_usd, spent_usd)"
            " VALUES ('2026-01-01', ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()

    totals = CacheManager(root, plain_config).get_stats()["all_processes"]
    result, problems = run_cli("cache", "stats", "--dir", str(root))

    assert before["hits"] >= 1
    assert totals["hits"] == before["hits"] + 2**62  # (the sound figures, and only those)
    assert all(math.isfinite(totals[name]) for name in ("saved_cost_usd", "spent_cost_usd"))
    # (1e300 dollars is no sum of call costs: refused)
    assert totals["spent_cost_usd"] == before["spent_cost_usd"] + 1
    assert (problems, result.exit_code) == ([], 0)
    assert any("ignoring" in r.getMessage() for r in caplog.records)
