"""The HTML report keeps the provider's prompt-cache savings apart from Spark's: a card, a
column per day and per model, and ``provider_cache_saved_usd`` in the embedded data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spark.cache.ledger import Ledger
from spark.reporting import render_report

ReadPage = Callable[[str], tuple[dict[str, Any], Any]]


def test_the_report_shows_three_sums(cache_dir: Path, read_page: ReadPage) -> None:
    ledger = Ledger(cache_dir)
    ledger.record("openai", "gpt-4o", hit=False, cost=0.5, provider_cache_saved=0.125)
    ledger.record("openai", "gpt-4o", hit=True, cost=0.5, key="k")
    ledger.record("gemini", "gemini-2.5-flash", hit=False, cost=0.25)
    ledger.flush()

    page = render_report(cache_dir)
    data, _ = read_page(page)

    totals = data["totals"]
    assert totals["spent_usd"] == pytest.approx(0.75)
    assert totals["saved_usd"] == pytest.approx(0.5)
    assert totals["provider_cache_saved_usd"] == pytest.approx(0.125)
    by_model = {m["model_id"]: m for m in data["models"]}
    assert by_model["gpt-4o"]["provider_cache_saved_usd"] == pytest.approx(0.125)
    assert by_model["gemini-2.5-flash"]["provider_cache_saved_usd"] == 0.0
    assert data["days"][0]["provider_cache_saved_usd"] == pytest.approx(0.125)
    assert "Prompt cache saved<b>$0.1250</b>" in page
    assert page.count("<th class=n>Prompt cache</th>") == 2  # per day and per model
