"""Three sums kept apart across processes: what the paid calls cost, what Spark's hits saved,
and what the provider's prompt caching took off the paid calls — in ``get_stats()``, the
ledger, ``spark cache stats --json`` and the HTML report's data. Older ledger files and entries
keep working (docs/costs.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spark.cache import CacheConfig, CacheManager
from spark.cache.codec import EntryMeta, encode_entry
from spark.cache.ledger import LEDGER_NAME, Ledger, read_ledger
from spark.cli import cli
from spark.reporting.data import collect_report_data
from spark.testing import ProviderServer

pytestmark = pytest.mark.slow

PRICED_CALLS = Path(__file__).parent / "_procs" / "priced_calls.py"
READ = 2_000


def run_process(server: ProviderServer, cache_dir: Path, *questions: str) -> list[list[Any]]:
    """Run ``priced_calls.py`` in a real process of its own; its answers' figures."""
    result = subprocess.run(
        [sys.executable, str(PRICED_CALLS), server.openai_base_url, str(cache_dir), *questions],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures: list[list[Any]] = json.loads(result.stdout)
    return figures


def test_two_processes_keep_the_three_sums_apart(server: ProviderServer, tmp_path: Path) -> None:
    cache_dir = tmp_path / "shared-cache"
    server.queue_usage(cache_read_tokens=READ, provider="openai")  # the first paid call only

    first = run_process(server, cache_dir, "one", "one")  # a paid call, then its hit
    second = run_process(server, cache_dir, "one", "two")  # a hit of the first's entry, a miss

    (cached_1, cost_1, cache_saved_1), (hit_1, *_) = first
    (hit_2, *_), (cached_2, cost_2, cache_saved_2) = second
    assert (cached_1, hit_1, hit_2, cached_2) == (False, True, True, False)
    assert cache_saved_1 > 0  # its prompt was served from the provider's cache
    assert cache_saved_2 == 0.0  # no cache read: the prompt cache saved nothing (priced: not None)
    spent, saved = cost_1 + cost_2, 2 * cost_1
    assert server.count("openai") == 2

    totals = CacheManager(cache_dir).get_stats()["all_processes"]
    assert (totals["hits"], totals["misses"]) == (2, 2)
    assert totals["spent_cost_usd"] == pytest.approx(spent)
    assert totals["saved_cost_usd"] == pytest.approx(saved)
    assert totals["provider_cache_saved_usd"] == pytest.approx(cache_saved_1)
    [by_model] = totals["by_model"].values()
    assert by_model["provider_cache_saved_usd"] == pytest.approx(cache_saved_1)

    shown = CliRunner().invoke(cli, ["cache", "stats", "--dir", str(cache_dir), "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["spent_usd"] == pytest.approx(spent)
    assert data["saved_usd"] == pytest.approx(saved)
    assert data["provider_cache_saved_usd"] == pytest.approx(cache_saved_1)

    report = collect_report_data(cache_dir)["totals"]
    assert report["spent_usd"] == pytest.approx(spent)
    assert report["saved_usd"] == pytest.approx(saved)
    assert report["provider_cache_saved_usd"] == pytest.approx(cache_saved_1)


_OLD_SCHEMA = """
CREATE TABLE usage (
    day TEXT NOT NULL, provider TEXT NOT NULL, model_id TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
    saved_usd REAL NOT NULL DEFAULT 0, spent_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (day, provider, model_id)
);
CREATE TABLE requests (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, model_id TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0, saved_usd REAL NOT NULL DEFAULT 0, last_hit REAL
);
INSERT INTO usage VALUES ('2026-01-02', 'openai', 'gpt-4o', 3, 1, 0.3, 0.1);
"""


def test_a_ledger_file_of_an_older_spark_reads_and_gains_the_column(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / LEDGER_NAME) as db:
        db.executescript(_OLD_SCHEMA)

    [old] = read_ledger(tmp_path)  # read as it is: no prompt-cache savings yet
    assert (old.hits, old.misses, old.provider_cache_saved_usd) == (3, 1, 0.0)
    ledger = Ledger(tmp_path)
    ledger.record("openai", "gpt-4o", hit=False, cost=0.5, provider_cache_saved=0.125)
    assert ledger.flush()

    [row] = read_ledger(tmp_path)
    assert (row.hits, row.misses) == (3, 2)
    assert row.spent_usd == pytest.approx(0.6)
    assert row.saved_usd == pytest.approx(0.3)
    assert row.provider_cache_saved_usd == pytest.approx(0.125)
    with sqlite3.connect(tmp_path / LEDGER_NAME) as db:
        columns = [name for _, name, *_ in db.execute("PRAGMA table_info(usage)")]
    assert columns[-1] == "provider_cache_saved_usd"
    again = Ledger(tmp_path)  # a second writer on a migrated file
    again.record("openai", "gpt-4o", hit=False, cost=0.5, provider_cache_saved=0.125)
    assert again.flush()
    assert read_ledger(tmp_path)[0].provider_cache_saved_usd == pytest.approx(0.25)


def test_a_hit_never_counts_prompt_cache_savings(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record("openai", "gpt-4o", hit=True, cost=0.5, key="k", provider_cache_saved=9.0)
    ledger.flush()

    [row] = read_ledger(tmp_path)
    assert (row.saved_usd, row.provider_cache_saved_usd) == (0.5, 0.0)


async def test_an_older_entry_without_the_new_fields_still_replays(
    server: ProviderServer, tmp_path: Path
) -> None:
    """An entry as Spark wrote it before the prompt-cache counts: usage of input and output
    only, no ``provider_cache_saved_usd``."""
    recorded = CacheConfig(enabled=True, cache_dir=tmp_path / "c")
    writer = server.model("openai", "gpt-4o", cache_config=recorded)
    server.queue_usage(cache_read_tokens=READ)
    await writer.generate("Hello?")
    await writer.aclose()
    [path] = (tmp_path / "c").rglob("*.json")
    entry = json.loads(path.read_text())
    old_response = {
        "text": "Hi.",
        "tool_calls": [],
        "finish_reason": "stop",
        "usage": {"input_tokens": 5, "output_tokens": 7},
        "cost_usd": 0.0001,
    }
    meta = EntryMeta(entry["key"], "openai", "gpt-4o", entry["created_at"], None)
    payload = {"request": entry["payload"]["request"], "response": old_response}
    path.write_bytes(encode_entry(meta, payload, None))
    CacheManager.reset_instances()  # a new run: nothing remembered in memory
    server.reset()

    replaying = CacheConfig(enabled=True, cache_dir=tmp_path / "c", mode="replay")
    model = server.model("openai", "gpt-4o", cache_config=replaying)
    answer = await model.generate("Hello?")
    await model.aclose()

    assert (answer.cached, answer.text, answer.cost_usd) == (True, "Hi.", 0.0001)
    usage = answer.usage
    assert (usage.input_tokens, usage.output_tokens) == (5, 7)
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (0, 0, 0)
    assert answer.provider_cache_saved_usd == 0.0  # priced, with no saving recorded
    assert server.count() == 0
