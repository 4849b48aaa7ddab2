"""Tables fit an 80-column terminal without dropping a column, and money has one format.

The cache holds real entries of long Bedrock model ids and a ledger with hits and dollars; the
width comes from ``COLUMNS``, as a terminal of that width sets it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from spark.cache.ledger import Ledger
from spark.cli._output import shorten_middle

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]

LONG_IDS = (
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "amazon.titan-embed-text-v2:0",
)
STATS_COLUMNS = ("Provider", "Model", "Entries", "Size", "Hits", "Misses", "Hit rate", "Saved")
LS_COLUMNS = ("Provider", "Model", "Key", "Size", "Created", "Expires", "Encrypted")
MONEY = re.compile(r"^<?\$[\d,]+\.\d{4}$")


@pytest.fixture
def busy_cache(fill: Fill, cache_dir: Path) -> Path:
    """Entries of three long Bedrock ids and of gpt-4o-mini, with hits, misses and dollars."""
    ledger = Ledger(cache_dir)
    for model_id in LONG_IDS:
        for key in fill(2, provider="bedrock", model_id=model_id):
            ledger.record("bedrock", model_id, hit=True, cost=0.0031, key=key)
            ledger.record("bedrock", model_id, hit=False, cost=1234.5)
    for key in fill(2):
        ledger.record("openai", "gpt-4o-mini", hit=True, cost=0.000012, key=key)
    ledger.flush()
    return cache_dir


def _rows(output: str, provider: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(provider)]


@pytest.mark.parametrize("command", [("cache", "stats"), ("cache", "ls")])
@pytest.mark.parametrize("width", [80, 100])
def test_tables_fit_without_dropping_a_column(
    spark: Invoke,
    busy_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    width: int,
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    result = spark(*command)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if str(busy_cache) not in line]
    assert max(len(line.rstrip()) for line in lines) <= width  # (the cache's path may not)
    header = next(line for line in lines if line.startswith("Provider"))
    columns = (*STATS_COLUMNS, "Spent") if command[-1] == "stats" else LS_COLUMNS
    assert header.split() == " ".join(columns).split()  # every column, each name whole
    models = 3 if command[-1] == "stats" else 6
    bedrock = [row for row in _rows(result.stdout, "bedrock") if "(all models)" not in row]
    assert len(bedrock) == models  # one line per row: nothing wrapped
    for model_id in LONG_IDS:
        shown = [row.split()[1] for row in bedrock if row.split()[1] in _spellings(model_id)]
        assert len(shown) == models // 3, (model_id, bedrock)
        assert shown[0].endswith(model_id[-6:])  # the end of an id stays
        assert shown[0].startswith(model_id[:4])


def _spellings(model_id: str) -> set[str]:
    return {shorten_middle(model_id, width) for width in range(12, len(model_id) + 1)}


def test_ids_that_fit_are_shown_whole(
    spark: Invoke, busy_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    table = spark("cache", "stats").stdout
    for model_id in LONG_IDS:
        assert f" {model_id} " in table
    assert "…" not in table


def test_money_has_one_format_in_stats(
    spark: Invoke, busy_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    table = spark("cache", "stats").stdout
    amounts = [word for word in table.split() if "$" in word]
    assert amounts  # saved and spent of every row
    assert all(MONEY.match(word) for word in amounts), amounts
    assert "$0.0062" in table  # two hits of 0.0031 saved
    assert "$2,469.0000" in table  # two misses of 1234.5 spent
    assert "<$0.0001" in _rows(table, "openai")[0]  # 2 x $0.000012: not shown as $0.0000


def test_an_80_column_terminal_in_a_real_subprocess(busy_cache: Path, project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spark", "cache", "stats"],
        cwd=project,
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if str(busy_cache) not in line]
    assert max(len(line.rstrip()) for line in table) <= 80
    assert "Spent" in result.stdout
    assert re.search(r"\banth\S*…\S*-v1:0 ", result.stdout)  # shortened, not hidden


def test_shorten_middle_keeps_both_ends() -> None:
    model_id = LONG_IDS[0]
    assert shorten_middle(model_id, len(model_id)) == model_id
    assert shorten_middle(model_id, 24) == "anthropic…-20240620-v1:0"
    assert shorten_middle(model_id, 12) == "anth…20-v1:0"
    assert all(len(shorten_middle(model_id, n)) == n for n in range(1, len(model_id)))
