"""The HTML cache report: its figures against the ledger and stats, escaping, files, charts."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, CacheManager
from spark.cache.ledger import LEDGER_NAME, Ledger, read_ledger, read_top_requests
from spark.errors import ConfigError
from spark.models.bedrock import BedrockModel
from spark.models.openai import OpenAIModel
from spark.reporting import collect_report_data, render_report, write_report
from spark.reporting.charts import Series, line_chart, nice_ticks
from spark.reporting.html import CHART_DAYS, embed_json, render_html
from spark.testing import ProviderServer
from spark.types import Price

ReadPage = Callable[[str], tuple[dict[str, Any], Any]]
PRICE = Price(input_per_million=2.0, output_per_million=8.0)
EVIL = "</script><script>alert('spark')</script>"


def openai_model(server: ProviderServer, cache_dir: Path, model_id: str = "gpt-4o") -> OpenAIModel:
    return OpenAIModel(
        model_id,
        base_url=server.openai_base_url,
        api_key="sk-report-test",
        max_retries=0,
        cache_config=CacheConfig(enabled=True, cache_dir=cache_dir),
        pricing=PRICE,
    )


def bedrock_model(server: ProviderServer, cache_dir: Path) -> BedrockModel:
    return BedrockModel(
        "anthropic.claude-3-haiku-20240307-v1:0",
        endpoint_url=server.bedrock_endpoint_url,
        region="us-east-1",
        aws_access_key_id="AKIAREPORTTEST",
        aws_secret_access_key="report-test-secret",
        max_retries=0,
        cache_config=CacheConfig(enabled=True, cache_dir=cache_dir),
        pricing=PRICE,
    )


async def test_report_figures_match_the_ledger_and_the_stats(
    server: ProviderServer, cache_dir: Path, tmp_path: Path, read_page: ReadPage
) -> None:
    gpt, claude = openai_model(server, cache_dir), bedrock_model(server, cache_dir)
    hello = await gpt.generate("Hello")  # miss, then three hits
    for _ in range(3):
        await gpt.generate("Hello")
    other = await gpt.generate("Something else")  # miss
    haiku = await claude.generate("Hi there")  # miss, then one hit
    await claude.generate("Hi there")

    # No explicit flush: the report flushes this process's pending ledger counts itself.
    out = write_report(cache_dir, tmp_path / "reports" / "cache.html")
    page = out.read_text(encoding="utf-8")
    data, _ = read_page(page)

    assert out == (tmp_path / "reports" / "cache.html").absolute()
    assert hello.cost_usd
    assert other.cost_usd
    assert haiku.cost_usd
    saved = 3 * hello.cost_usd + haiku.cost_usd
    spent = hello.cost_usd + other.cost_usd + haiku.cost_usd
    totals = data["totals"]
    assert (totals["hits"], totals["misses"]) == (4, 3)
    assert totals["hit_rate"] == pytest.approx(4 / 7)
    assert totals["saved_usd"] == pytest.approx(saved)
    assert totals["spent_usd"] == pytest.approx(spent)
    assert "57.1%" in page

    ledger = read_ledger(cache_dir, by_day=True)
    today = time.strftime("%Y-%m-%d")
    assert [d["day"] for d in data["days"]] == [today]
    assert data["days"][0]["hits"] == sum(r.hits for r in ledger) == 4
    assert data["days"][0]["saved_usd"] == pytest.approx(sum(r.saved_usd for r in ledger))
    assert [(r["provider"], r["model_id"], r["hits"], r["misses"]) for r in data["ledger"]] == [
        (r.provider, r.model_id, r.hits, r.misses) for r in ledger
    ]

    stats = CacheManager.get_instance(cache_dir).get_stats()
    assert (totals["entries"], totals["size_bytes"]) == (3, stats["total_size_bytes"])
    assert {p["provider"]: (p["entries"], p["size_bytes"]) for p in data["providers"]} == {
        p: (n, stats["bytes_by_provider"][p]) for p, n in stats["entries_by_provider"].items()
    }
    by_model = {(m["provider"], m["model_id"]): m for m in data["models"]}
    assert by_model[("openai", "gpt-4o")]["entries"] == 2
    assert by_model[("openai", "gpt-4o")]["hits"] == 3
    claude_row = by_model[("bedrock", "anthropic.claude-3-haiku-20240307-v1:0")]
    assert (claude_row["entries"], claude_row["hits"], claude_row["misses"]) == (1, 1, 1)
    assert claude_row["size_bytes"] == stats["bytes_by_model"]["bedrock"][claude.model_id]

    top = data["top_requests"]
    assert [(r["key"], r["hits"]) for r in top] == [
        (gpt.cache_key("Hello"), 3),
        (claude.cache_key("Hi there"), 1),
    ]
    assert top[0]["saved_usd"] == pytest.approx(3 * hello.cost_usd)
    assert top[0]["provider"] == "openai"
    assert [r.key for r in read_top_requests(cache_dir)] == [r["key"] for r in top]
    assert gpt.cache_key("Hello") in page  # shown in the table too


async def test_user_controlled_text_is_escaped(
    server: ProviderServer, cache_dir: Path, read_page: ReadPage
) -> None:
    model = openai_model(server, cache_dir, model_id=EVIL)
    await model.get_text("Hi")
    await model.get_text("Hi")
    ledger = Ledger(cache_dir)
    ledger.record("openai", "<b>bold</b>", hit=True, cost=0.5, key="<script>alert(1)</script>")
    ledger.flush()

    page = render_report(cache_dir)
    data, reader = read_page(page)

    assert page.count("<script") == 1  # only the JSON data element
    assert "alert('spark')</script>" not in page
    assert "<b>bold</b>" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(&#x27;spark&#x27;)" in page
    assert "<b>" not in reader.tags
    models = {m["model_id"] for m in data["models"]}
    assert {EVIL, "<b>bold</b>"} <= models  # the data reads back unchanged
    assert "<script>alert(1)</script>" in {r["key"] for r in data["top_requests"]}
    json_text = reader.scripts[0][1]
    assert "<" not in json_text
    assert ">" not in json_text
    assert "&" not in json_text


def test_days_over_time_with_gaps(cache_dir: Path, read_page: ReadPage) -> None:
    ledger = Ledger(cache_dir)
    ledger.record("openai", "gpt-4o", hit=False, cost=0.1)
    ledger.flush()  # creates the ledger file; the rows below stand for earlier days
    rows = [
        ("2025-03-01", "openai", "gpt-4o", 3, 1, 0.3, 0.1),
        ("2025-03-01", "gemini", "gemini-2.0-flash", 1, 1, 0.2, 0.2),
        ("2025-03-04", "openai", "gpt-4o", 0, 2, 0.0, 0.4),
    ]
    with sqlite3.connect(cache_dir / LEDGER_NAME) as db:
        db.execute("DELETE FROM usage")
        columns = "day, provider, model_id, hits, misses, saved_usd, spent_usd"
        db.executemany(f"INSERT INTO usage ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    page = render_report(cache_dir)
    data, _ = read_page(page)

    assert data["days"] == [
        {
            "day": "2025-03-01",
            "hits": 4,
            "misses": 2,
            "hit_rate": pytest.approx(4 / 6),
            "saved_usd": pytest.approx(0.5),
            "spent_usd": pytest.approx(0.3),
            "provider_cache_saved_usd": 0.0,
        },
        {
            "day": "2025-03-04",
            "hits": 0,
            "misses": 2,
            "hit_rate": 0.0,
            "saved_usd": 0.0,
            "spent_usd": pytest.approx(0.4),
            "provider_cache_saved_usd": 0.0,
        },
    ]
    # Four calendar days on the axis, two of them without lookups: two dots on the line.
    hit_rate_chart = page.split('aria-label="hit rate per day"')[1].split("</svg>")[0]
    assert hit_rate_chart.count("<circle") == 2
    assert ">03-01<" in hit_rate_chart
    assert ">03-04<" in hit_rate_chart
    assert "<title>2025-03-01: 66.7% (4 hits, 2 misses)</title>" in hit_rate_chart
    assert "<title>2025-03-04: 0.0% (0 hits, 2 misses)</title>" in hit_rate_chart
    dollars_chart = page.split('aria-label="dollars per day"')[1].split("</svg>")[0]
    assert "<title>2025-03-04: saved $0.0000, spent $0.4000</title>" in dollars_chart


def test_an_empty_cache_still_makes_a_page(cache_dir: Path, read_page: ReadPage) -> None:
    page = render_report(cache_dir)
    data, reader = read_page(page)

    assert data["totals"] == {
        "entries": 0,
        "size_bytes": 0,
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
        "saved_usd": 0.0,
        "spent_usd": 0.0,
        "provider_cache_saved_usd": 0.0,
    }
    assert data["days"] == data["models"] == data["top_requests"] == []
    assert "no data yet" in page
    assert "No request has been served from the cache yet." in page
    # Self-contained: nothing is loaded from anywhere.
    assert not [value for name, value in reader.attributes if name in ("src", "href")]
    assert "<link" not in page
    assert "@import" not in page


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cache directory at"):
        write_report(tmp_path / "nowhere", tmp_path / "out.html")
    assert not (tmp_path / "out.html").exists()
    with pytest.raises(ConfigError, match="no cache directory at"):
        collect_report_data(tmp_path / "nowhere")


def test_write_report_replaces_the_file_atomically(cache_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    target.write_text("old")

    written = write_report(str(cache_dir), str(target))

    assert written == target.absolute()
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert os.listdir(target.parent) == ["report.html"]  # no temp file left behind


def test_collect_report_data_is_json_and_matches_the_page(
    cache_dir: Path, read_page: ReadPage
) -> None:
    Ledger(cache_dir).record("openai", "gpt-4o", hit=True, cost=0.25, key="k1")
    data = collect_report_data(cache_dir)  # a fresh Ledger's counts are not flushed yet
    assert data["totals"]["hits"] == 0

    ledger = Ledger(cache_dir)
    ledger.record("openai", "gpt-4o", hit=True, cost=0.25, key="k1")
    ledger.flush()
    data = collect_report_data(cache_dir, top=1)
    embedded, _ = read_page(render_html(data))

    assert json.loads(json.dumps(data)) == data
    assert embedded == data
    assert data["schema"] == 1
    assert data["cache_dir"] == str(cache_dir.absolute())
    assert data["top_requests"] == [
        {
            "key": "k1",
            "provider": "openai",
            "model_id": "gpt-4o",
            "hits": 1,
            "saved_usd": 0.25,
            "price_known": True,
            "last_hit": pytest.approx(time.time(), abs=60),
            "recorded_at": None,  # (no entry holds k1)
            "sealed": None,
            "preview": None,
        }
    ]


def test_embed_json_cannot_break_out_of_its_element() -> None:
    value = {"k": "</script><!-- & \u2028 \u2029 é"}

    text = embed_json(value)

    assert "</" not in text
    assert "<!--" not in text
    assert "&" not in text
    assert "\u2028" not in text
    assert "\u2029" not in text
    assert json.loads(text) == value


def test_chart_helpers() -> None:
    assert [nice_ticks(v, 1)[-1] for v in (0, 0.7, 1, 3, 4.2, 17)] == [1, 1, 1, 3, 6, 20]
    assert nice_ticks(0.0031, 0.0001) == [0.0, 0.001, 0.002, 0.003, 0.004]
    svg = line_chart(
        "rate", ["a", "b", "c"], Series("r", "#000", [0.5, None, 1.0]), str, 1.0, resolution=0.01
    )
    assert svg.count("<circle") == 2
    assert svg.count(" M") + svg.count('"M') == 2  # the gap starts a new segment
    empty = line_chart("rate", ["a"], Series("r", "#000", [None]), str, 1.0, resolution=0.01)
    assert "no data yet" in empty
    assert CHART_DAYS == 90
