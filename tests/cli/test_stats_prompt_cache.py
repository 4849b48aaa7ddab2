"""``spark cache stats`` keeps the provider's prompt-cache savings apart from Spark's own:
a line below the table once a paid call had some (the table stays within 80 columns), and
``provider_cache_saved_usd`` in ``--json`` (docs/costs.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from spark.cache.ledger import Ledger

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]
LONG_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture
def prompt_cached(fill: Fill, cache_dir: Path) -> Path:
    """Entries of a long Bedrock id and of gpt-4o-mini; paid calls with prompt-cache savings."""
    ledger = Ledger(cache_dir)
    for key in fill(2, provider="bedrock", model_id=LONG_ID):
        ledger.record("bedrock", LONG_ID, hit=True, cost=0.25, key=key)
    ledger.record("bedrock", LONG_ID, hit=False, cost=1234.5, provider_cache_saved=0.75)
    ledger.record("bedrock", LONG_ID, hit=False, cost=0.5, provider_cache_saved=0.25)
    for key in fill(1):
        ledger.record("openai", "gpt-4o-mini", hit=True, cost=0.01, key=key)
    ledger.record("openai", "gpt-4o-mini", hit=False, cost=0.02)
    ledger.flush()
    return cache_dir


def test_json_keeps_three_sums_apart(spark: Invoke, prompt_cached: Path) -> None:
    result = spark("cache", "stats", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)

    assert data["saved_usd"] == pytest.approx(0.51)  # Spark's hits
    assert data["spent_usd"] == pytest.approx(1235.02)  # the paid calls
    assert data["provider_cache_saved_usd"] == pytest.approx(1.0)  # the provider's cache
    by_model = {row["model_id"]: row for row in data["by_model"]}
    assert by_model[LONG_ID]["provider_cache_saved_usd"] == pytest.approx(1.0)
    assert by_model["gpt-4o-mini"]["provider_cache_saved_usd"] == 0.0
    assert data["by_provider"]["bedrock"]["provider_cache_saved_usd"] == pytest.approx(1.0)


@pytest.mark.parametrize("width", [80, 120])
def test_the_prompt_cache_sum_is_shown_apart(
    spark: Invoke, prompt_cached: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    result = spark("cache", "stats")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if str(prompt_cached) not in line]
    assert max(len(line.rstrip()) for line in lines) <= width
    header = next(line for line in lines if line.startswith("Provider"))
    assert header.split()[-2:] == ["Saved", "Spent"]  # the table as it always was
    [total] = [line for line in lines if line.startswith("total")]
    assert total.split()[-2:] == ["$0.5100", "$1,235.0200"]
    [summary] = [line for line in lines if "prompt caching saved" in line]
    assert "$1.0000" in summary
    assert lines[-1].split() == ["bedrock", LONG_ID, "$1.0000"]  # by model, gpt-4o-mini none


def test_no_prompt_cache_line_without_savings(spark: Invoke, fill: Fill, cache_dir: Path) -> None:
    ledger = Ledger(cache_dir)
    for key in fill(1):
        ledger.record("openai", "gpt-4o-mini", hit=True, cost=0.01, key=key)
    ledger.flush()

    table = spark("cache", "stats").stdout
    assert "Saved" in table
    assert "prompt caching" not in table


def test_a_model_without_a_price_is_price_unknown_not_zero(
    spark: Invoke, fill: Fill, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(cache_dir)
    for key in fill(1, model_id="my-finetune-7"):
        ledger.record("openai", "my-finetune-7", hit=True, cost=None, key=key)
    ledger.record("openai", "my-finetune-7", hit=False, cost=None)
    for key in fill(1):
        ledger.record("openai", "gpt-4o-mini", hit=True, cost=0.01, key=key)
    ledger.flush()
    monkeypatch.setenv("COLUMNS", "80")
    table = spark("cache", "stats")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "my-finetune-7" in line)
    assert "$" not in row  # no $0.0000 for a price nobody knows
    assert row.split()[-2:] == ["?", "?"]
    assert "price unknown" in table.stdout
    priced = next(line for line in table.stdout.splitlines() if "gpt-4o-mini" in line)
    assert "$0.0100" in priced
    data = json.loads(spark("cache", "stats", "--json").stdout)
    known = {row["model_id"]: row["price_known"] for row in data["by_model"]}
    assert known == {"my-finetune-7": False, "gpt-4o-mini": True}


def test_calls_that_could_not_be_priced_are_unknown_in_stats_and_the_report(
    spark: Invoke, fill: Fill, cache_dir: Path, tmp_path: Path
) -> None:
    """A Gemini embedding reports no token count: its model has a price, its calls no cost.
    And a model with no price at all: the report showed $0.0000 for both."""
    ledger = Ledger(cache_dir)
    for key in fill(1, provider="gemini", model_id="gemini-embedding-001"):
        ledger.record("gemini", "gemini-embedding-001", hit=True, cost=None, key=key)
    for key in fill(1, model_id="my-finetune-7"):
        ledger.record("openai", "my-finetune-7", hit=True, cost=None, key=key)
    for key in fill(1):
        ledger.record("openai", "gpt-4o-mini", hit=True, cost=0.01, key=key)
    ledger.flush()
    data = json.loads(spark("cache", "stats", "--json").stdout)
    known = {row["model_id"]: row["price_known"] for row in data["by_model"]}
    assert known == {"gemini-embedding-001": False, "my-finetune-7": False, "gpt-4o-mini": True}
    report = json.loads(spark("cache", "report", "--json").stdout)
    assert {m["model_id"]: m["price_known"] for m in report["models"]} == known
    assert {r["model_id"]: r["price_known"] for r in report["top_requests"]} == known
    page = tmp_path / "report.html"
    assert spark("cache", "report", "--html", str(page)).exit_code == 0
    html = page.read_text()
    assert "price unknown for gemini/gemini-embedding-001, openai/my-finetune-7" in html
    row = html[html.index("my-finetune-7") :].split("</tr>")[0]
    assert "$0.0000" not in row
