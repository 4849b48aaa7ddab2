"""Prices come from ``genai-prices``: Spark's cost of a usage is the package's own
``calc_price`` of the same usage, for current model ids of all three providers, Bedrock's
inference-profile ids, cached input, tiers and the call's date (docs/costs.md)."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage as PackageUsage
from genai_prices import calc_price
from genai_prices.data_snapshot import get_snapshot

from spark.models.pricing import BUILTIN_PRICES, PriceTable, default_price_table
from spark.types import Usage

# (Spark's provider, the package's provider, model id as a user writes it)
CURRENT_IDS = [
    ("openai", "openai", "gpt-4o"),
    ("openai", "openai", "gpt-4o-mini"),
    ("openai", "openai", "gpt-5"),
    ("openai", "openai", "gpt-5-mini"),
    ("openai", "openai", "gpt-3.5-turbo"),
    ("openai", "openai", "gpt-4.1"),
    ("openai", "openai", "o3-mini"),
    ("openai", "openai", "text-embedding-3-small"),
    ("bedrock", "aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("bedrock", "aws", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("bedrock", "aws", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("bedrock", "aws", "eu.anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("bedrock", "aws", "anthropic.claude-3-haiku-20240307-v1:0"),
    ("bedrock", "aws", "amazon.nova-pro-v1:0"),
    ("bedrock", "aws", "us.amazon.nova-pro-v1:0"),
    ("bedrock", "aws", "amazon.titan-embed-text-v2:0"),
    ("gemini", "google", "gemini-2.5-flash"),
    ("gemini", "google", "gemini-2.5-pro"),
    ("gemini", "google", "gemini-2.0-flash"),
    ("gemini", "google", "gemini-pro"),
    ("gemini", "google", "gemini-embedding-001"),
]
USAGE = Usage(input_tokens=12_000, output_tokens=800, cache_read_tokens=5_000)
WHEN = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)


def package_cost(model_id: str, provider_id: str, usage: Usage, when: dt.datetime) -> Decimal:
    """The package's own price of ``usage``, from its public ``calc_price``."""
    counts = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }
    package_usage = PackageUsage(**{k: v for k, v in counts.items() if v})
    result = calc_price(
        package_usage, model_id, provider_id=provider_id, genai_request_timestamp=when
    )
    return result.total_price


@pytest.mark.parametrize(("provider", "provider_id", "model_id"), CURRENT_IDS)
def test_current_ids_cost_what_the_package_says(
    provider: str, provider_id: str, model_id: str
) -> None:
    usage = USAGE if "embed" not in model_id else Usage(input_tokens=12_000)

    cost = default_price_table().cost(model_id, usage, provider=provider, when=WHEN)

    expected = package_cost(model_id, provider_id, usage, WHEN)
    assert cost is not None
    assert cost > 0
    assert cost == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize(("provider", "provider_id", "model_id"), CURRENT_IDS)
def test_the_provider_is_found_from_the_id_alone(
    provider: str, provider_id: str, model_id: str
) -> None:
    with_provider = default_price_table().cost(model_id, USAGE, provider=provider, when=WHEN)
    assert default_price_table().cost(model_id, USAGE, when=WHEN) == with_provider


@pytest.mark.parametrize(
    ("provider", "provider_id", "model_id"),
    [ids for ids in CURRENT_IDS if ids[2] in ("gpt-4o", "gemini-2.5-flash", "amazon.nova-pro-v1:0")]
    + [("bedrock", "aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")],
)
def test_cache_reads_are_cheaper_and_the_saving_is_the_difference(
    provider: str, provider_id: str, model_id: str
) -> None:
    uncached = Usage(input_tokens=USAGE.input_tokens, output_tokens=USAGE.output_tokens)

    quote = default_price_table().quote(model_id, USAGE, provider=provider, when=WHEN)

    full = package_cost(model_id, provider_id, uncached, WHEN)
    paid = package_cost(model_id, provider_id, USAGE, WHEN)
    assert paid < full  # the package has a cache-read rate for these
    assert quote.cost_usd == pytest.approx(float(paid), rel=1e-9)
    assert quote.provider_cache_saved_usd == pytest.approx(float(full - paid), rel=1e-9)


def test_cache_writes_are_priced_at_their_rate() -> None:
    model_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    written = Usage(input_tokens=10_000, output_tokens=100, cache_write_tokens=8_000)
    plain = Usage(input_tokens=10_000, output_tokens=100)

    cost = default_price_table().cost(model_id, written, provider="bedrock", when=WHEN)

    assert cost == pytest.approx(float(package_cost(model_id, "aws", written, WHEN)), rel=1e-9)
    assert cost is not None
    assert cost > float(package_cost(model_id, "aws", plain, WHEN))  # writes cost more


def test_tiered_prices_follow_the_prompt_size() -> None:
    small = Usage(input_tokens=100_000, output_tokens=1_000)
    large = Usage(input_tokens=300_000, output_tokens=1_000)  # past gemini-2.5-pro's 200k tier
    table = default_price_table()

    small_cost = table.cost("gemini-2.5-pro", small, provider="gemini", when=WHEN)
    large_cost = table.cost("gemini-2.5-pro", large, provider="gemini", when=WHEN)

    assert small_cost == pytest.approx(float(package_cost("gemini-2.5-pro", "google", small, WHEN)))
    assert large_cost == pytest.approx(float(package_cost("gemini-2.5-pro", "google", large, WHEN)))
    assert small_cost is not None
    assert large_cost is not None
    assert large_cost / large.input_tokens > small_cost / small.input_tokens


def _dated_models() -> list[tuple[str, str, str, dt.date]]:
    """Models of Spark's providers whose price changes on a date, in the package's data."""
    spark_names = {"openai": "openai", "aws": "bedrock", "google": "gemini"}
    found = []
    for provider in get_snapshot().providers:
        for model in provider.models if provider.id in spark_names else ():
            prices: Any = model.prices if isinstance(model.prices, list) else []
            starts = [getattr(p.constraint, "start_date", None) for p in prices]
            if any(starts) and model.is_match(model.id):  # (an id a user can write)
                day = next(start for start in starts if start)
                found.append((spark_names[provider.id], provider.id, model.id, day))
    return found


def _around(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    before = dt.datetime.combine(day - dt.timedelta(days=2), dt.time(12), dt.UTC)
    return before, before + dt.timedelta(days=4)


def test_the_price_is_the_one_in_force_at_the_calls_date() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    changed = [
        found
        for found in _dated_models()
        if len({package_cost(found[2], found[1], usage, w) for w in _around(found[3])}) == 2
    ]
    if not changed:
        pytest.skip("this genai-prices version has no dated price change for openai/aws/google")
    provider, provider_id, model_id, day = changed[0]
    table = default_price_table()

    costs = [table.cost(model_id, usage, provider=provider, when=w) for w in _around(day)]

    expected = [float(package_cost(model_id, provider_id, usage, w)) for w in _around(day)]
    assert costs == pytest.approx(expected)
    assert expected[0] != expected[1]  # the price really changed that day


def test_price_gives_the_rates_of_a_model() -> None:
    price = default_price_table().price("gpt-4o-mini", provider="openai", when=WHEN)

    assert price is not None
    assert price.as_of == "2026-11-02"
    one_million = Usage(input_tokens=1_000_000)
    assert price.input_per_million == pytest.approx(
        float(package_cost("gpt-4o-mini", "openai", one_million, WHEN))
    )
    assert price.cache_read_per_million is not None
    assert price.cache_read_per_million < price.input_per_million
    assert BUILTIN_PRICES["gpt-4o-mini"].input_per_million == price.input_per_million
    assert "gpt-4o-mini" in set(BUILTIN_PRICES)


def test_an_unknown_model_costs_none_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    model_id = f"my-finetune-{uuid.uuid4().hex[:8]}"
    table = PriceTable()

    with caplog.at_level(logging.WARNING, logger="spark.models.pricing"):
        first = table.cost(model_id, USAGE, provider="openai")
        again = PriceTable().quote(model_id, USAGE, provider="openai")  # another table, same run

    assert first is None
    assert (again.cost_usd, again.provider_cache_saved_usd) == (None, None)
    warnings = [r for r in caplog.records if r.name == "spark.models.pricing"]
    assert len(warnings) == 1
    assert model_id in warnings[0].getMessage()
    assert "price unknown" in warnings[0].getMessage()
    assert table.price(model_id, provider="openai") is None
    with pytest.raises(KeyError):
        BUILTIN_PRICES[model_id]


def test_usage_the_package_refuses_costs_none_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = Usage(input_tokens=10, output_tokens=5, cache_read_tokens=50)  # reads > input
    model_id = "gpt-4o-mini"
    with caplog.at_level(logging.WARNING, logger="spark.models.pricing"):
        costs = [PriceTable().cost(model_id, broken, provider="openai") for _ in range(2)]

    assert costs == [None, None]
    assert len([r for r in caplog.records if "cannot price" in r.getMessage()]) == 1


def test_no_network_at_import_or_call_time() -> None:
    """In a process whose sockets cannot connect, prices still come (the bundled data), and
    nothing starts the package's downloader."""
    script = """
import socket, threading
def refuse(*args, **kwargs):
    raise AssertionError("network used")
socket.socket.connect = refuse
socket.create_connection = refuse
from spark.models.pricing import default_price_table
from spark.types import Usage
cost = default_price_table().cost("gpt-4o", Usage(1000, 100, 400), provider="openai")
assert cost and cost > 0, cost
from genai_prices import update_prices
assert update_prices._shared_updater.ref_count == 0
assert not [t for t in threading.enumerate() if "price" in t.name.lower()]
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_spark_does_not_import_the_package() -> None:
    script = "import sys, spark, spark.models.pricing; print('genai_prices' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
