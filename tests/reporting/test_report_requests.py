"""The report says which request each top request is, shows one money format, and draws axes
whose ticks never repeat."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, generate_key
from spark.cache.ledger import Ledger
from spark.models.openai import OpenAIModel
from spark.reporting import collect_report_data, render_report
from spark.reporting.charts import Series, column_chart, nice_ticks
from spark.reporting.html import render_html
from spark.reporting.money import USD_STEP, format_usd
from spark.testing import ProviderServer
from spark.types import Price

ReadPage = Callable[[str], tuple[dict[str, Any], Any]]
QUESTION = "What is the capital of France?"
MONEY = re.compile(r"^<?\$[\d,]+\.\d{4}$")


def _model(server: ProviderServer, cache_dir: Path, *, encrypt: bool = False) -> OpenAIModel:
    return OpenAIModel(
        "gpt-4o",
        base_url=server.openai_base_url,
        api_key="sk-report-test",
        max_retries=0,
        cache_config=CacheConfig(enabled=True, cache_dir=cache_dir, encrypt=encrypt),
        pricing=Price(input_per_million=2.0, output_per_million=8.0),
    )


def _top_table(page: str) -> str:
    return page.split("<h2>Top repeated requests</h2>")[1].split("</table>")[0]


def _visible(page: str) -> str:
    """The page without its embedded JSON, tags removed."""
    body = page.split('<script type="application/json"')[0]
    return unescape(re.sub(r"<[^>]+>", " ", body))


async def test_top_requests_say_which_request_each_is(
    server: ProviderServer, cache_dir: Path, read_page: ReadPage
) -> None:
    model = _model(server, cache_dir)
    for _ in range(3):
        await model.generate(QUESTION)
    before = time.time()
    page = render_report(cache_dir)
    data, _ = read_page(page)

    (row,) = data["top_requests"]
    assert row["preview"] == QUESTION
    assert row["sealed"] is False
    assert row["recorded_at"] == pytest.approx(before, abs=60)
    table = _top_table(page)
    for header in ("Request", "Provider", "Model", "Recorded", "Hits", "Saved", "Last hit"):
        assert f">{header}</th>" in table
    key = model.cache_key(QUESTION)
    assert f'“{QUESTION}” <code title="{key}">{key[:12]}</code>' in table
    assert "<td>openai</td><td>gpt-4o</td>" in table
    assert time.strftime("%Y-%m-%d", time.localtime(row["recorded_at"])) in table
    assert f"<code>{key}</code>" not in table  # no bare 64-hex key as the request's name


async def test_an_encrypted_cache_shows_no_text_of_its_requests(
    server: ProviderServer, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, read_page: ReadPage
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    model = _model(server, cache_dir, encrypt=True)
    for _ in range(2):
        await model.generate(QUESTION)
    page = render_report(cache_dir)
    data, _ = read_page(page)

    assert QUESTION not in page
    assert "capital" not in page
    (row,) = data["top_requests"]
    assert (row["sealed"], row["preview"]) == (True, None)
    assert "<td>(encrypted) <code" in _top_table(page)


async def test_plaintext_entries_of_an_encrypting_cache_show_no_text(
    server: ProviderServer, cache_dir: Path
) -> None:
    model = _model(server, cache_dir)
    for _ in range(2):
        await model.generate(QUESTION)
    page = render_report(cache_dir, encrypted=True)
    assert QUESTION not in page
    assert "(text not shown: the cache encrypts)" in _top_table(page)


def test_a_request_whose_entry_is_gone_still_has_its_figures(cache_dir: Path) -> None:
    ledger = Ledger(cache_dir)
    ledger.record("openai", "gpt-4o", hit=True, cost=0.25, key="a" * 64)
    ledger.flush()
    table = _top_table(render_report(cache_dir))
    assert "(entry no longer in the cache)" in table
    assert "$0.2500" in table


async def test_every_amount_on_the_page_has_the_one_money_format(
    server: ProviderServer, cache_dir: Path
) -> None:
    model = _model(server, cache_dir)
    for question in ("one", "two", "one", "one"):
        await model.generate(question)
    ledger = Ledger(cache_dir)
    ledger.record("openai", "gpt-4o", hit=False, cost=1234.5)
    ledger.record("openai", "gpt-4o", hit=True, cost=0.000004, key="b" * 64)
    ledger.flush()
    text = _visible(render_report(cache_dir))
    amounts = re.findall(r"<?\$[\d,.]+\d", text)
    assert len(amounts) > 10
    assert all(MONEY.match(amount) for amount in amounts), amounts
    assert "$1,234." in text
    assert "<$0.0001" in text


def _axis_labels(svg: str) -> list[str]:
    return re.findall(
        r'<text class="axis" x="\d+" y="[\d.]+" text-anchor="end">([^<]+)</text>', svg
    )


@pytest.mark.parametrize(
    "largest", [0.00003, 0.00021, 0.0031, 0.005, 0.0125, 0.017, 0.02, 0.6, 3.3, 17.0, 1234.5]
)
def test_the_dollar_axis_never_repeats_a_tick(largest: float) -> None:
    svg = column_chart(
        "dollars per day",
        ["03-01", "03-02"],
        [Series("saved", "#000", [largest, largest / 3]), Series("spent", "#111", [0.0, 0.0])],
        format_usd,
        resolution=USD_STEP,
    )
    labels = _axis_labels(svg)
    assert labels[0] == "$0.0000"
    assert len(set(labels)) == len(labels), labels
    ticks = nice_ticks(largest, USD_STEP)
    assert [format_usd(t) for t in ticks] == labels
    assert ticks[-1] >= largest
    assert len(ticks) <= 6


def test_the_old_duplicate_ticks_of_a_report_are_gone(cache_dir: Path) -> None:
    ledger = Ledger(cache_dir)
    ledger.record("openai", "gpt-4o", hit=True, cost=0.017, key="c" * 64)  # axis up to $0.02
    ledger.flush()
    page = render_html(collect_report_data(cache_dir))
    dollars = page.split('aria-label="dollars per day"')[1].split("</svg>")[0]
    assert _axis_labels(dollars) == ["$0.0000", "$0.0050", "$0.0100", "$0.0150", "$0.0200"]
    rate = page.split('aria-label="hit rate per day"')[1].split("</svg>")[0]
    assert _axis_labels(rate) == ["0.0%", "25.0%", "50.0%", "75.0%", "100.0%"]


def test_format_usd() -> None:
    assert [format_usd(v) for v in (0, 0.006168, 0.01, 12.34, 1234.5, 0.00004, None)] == [
        "$0.0000",
        "$0.0062",
        "$0.0100",
        "$12.3400",
        "$1,234.5000",
        "<$0.0001",
        "-",
    ]
    assert format_usd(float("nan")) == "-"
