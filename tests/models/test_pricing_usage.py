"""Prompt-cache and reasoning tokens through the real SDKs and the local server: each
provider's own usage fields (plain and streamed) become ``Usage``'s counts, are priced at the
package's rates, stored with the entry and replayed; ``[pricing."<id>"]`` overrides them
(docs/costs.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as PackageUsage
from genai_prices import calc_price

from spark.profiles import from_profile
from spark.testing import ProviderServer
from spark.types import Price, Usage

Models = Any
QUESTION = "What does a prompt cache keep?"
READ, WRITE, REASONING = 3_000, 1_200, 40
# Spark's provider -> (a model id with a cache-read rate, the package's provider id)
PRICED = {
    "openai": ("gpt-4o-mini", "openai"),
    "bedrock": ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
    "gemini": ("gemini-2.5-flash", "google"),
}


def package_cost(provider: str, usage: Usage) -> Decimal:
    model_id, provider_id = PRICED[provider]
    counts = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }
    package_usage = PackageUsage(**{name: n for name, n in counts.items() if n})
    return calc_price(package_usage, model_id, provider_id=provider_id).total_price


def scripted(provider: str, server: ProviderServer) -> None:
    """What the next answer reports: cache reads everywhere, writes on Bedrock (the others
    report none), reasoning where the provider reports it."""
    server.queue_usage(
        cache_read_tokens=READ,
        cache_write_tokens=WRITE if provider == "bedrock" else 0,
        reasoning_tokens=0 if provider == "bedrock" else REASONING,
    )


def expected_usage(provider: str, base: Usage) -> Usage:
    """Spark's counts: input and output are totals on every provider."""
    if provider == "bedrock":  # inputTokens leaves the cached tokens out: Spark adds them
        return Usage(base.input_tokens + READ + WRITE, base.output_tokens, READ, WRITE, 0)
    return Usage(base.input_tokens + READ, base.output_tokens + REASONING, READ, 0, REASONING)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("provider", ["openai", "bedrock", "gemini"])
async def test_prompt_cache_tokens_are_read_priced_stored_and_replayed(
    models: Models, server: ProviderServer, provider: str, streamed: bool
) -> None:
    model_id = PRICED[provider][0]
    base = (await models(provider, model_id, enable_cache=False).generate(QUESTION)).usage
    assert base.cache_read_tokens == base.reasoning_tokens == 0  # nothing scripted: none
    model = models(provider, model_id)

    scripted(provider, server)
    if streamed:
        text = "".join([chunk async for chunk in model.stream_text(QUESTION)])
        first = await model.generate(QUESTION)  # a hit: the entry the stream stored
        assert (first.cached, first.text) == (True, text)
    else:
        first = await model.generate(QUESTION)
        assert not first.cached
    replay = await model.generate(QUESTION)

    usage = expected_usage(provider, base)
    assert first.usage == replay.usage == usage
    paid = package_cost(provider, usage)
    full = package_cost(provider, Usage(usage.input_tokens, usage.output_tokens, 0, WRITE))
    if provider != "bedrock":
        full = package_cost(provider, Usage(usage.input_tokens, usage.output_tokens))
    assert first.cost_usd == pytest.approx(float(paid), rel=1e-9)
    assert first.provider_cache_saved_usd == pytest.approx(float(full - paid), rel=1e-9)
    assert replay.provider_cache_saved_usd == first.provider_cache_saved_usd
    assert (replay.cached, replay.cost_usd) == (True, first.cost_usd)
    stats = model.cache_manager.get_stats()
    assert stats["spent_cost_usd"] == pytest.approx(first.cost_usd)
    assert stats["provider_cache_saved_usd"] == pytest.approx(first.provider_cache_saved_usd)
    assert server.count(provider) == 2  # the baseline and the one paid call


async def test_an_entry_records_the_counts(
    models: Models, server: ProviderServer, cache_config: Any
) -> None:
    model = models("bedrock", PRICED["bedrock"][0])
    scripted("bedrock", server)
    await model.generate(QUESTION)

    [entry] = Path(cache_config.resolved_dir).rglob("*.json")
    stored = json.loads(entry.read_text())["payload"]["response"]
    assert stored["usage"]["cache_read_tokens"] == READ
    assert stored["usage"]["cache_write_tokens"] == WRITE
    assert "reasoning_tokens" not in stored["usage"]  # a count of 0 is left out
    assert stored["provider_cache_saved_usd"] > 0


async def test_a_price_override_has_its_own_cache_rates(
    models: Models, server: ProviderServer
) -> None:
    price = Price(2.0, 8.0, cache_read_per_million=0.5, cache_write_per_million=2.5)
    model = models("bedrock", "eu.anthropic.claude-3-5-haiku-20241022-v1:0", pricing=price)
    scripted("bedrock", server)

    answer = await model.generate(QUESTION)

    usage = answer.usage
    uncached = usage.input_tokens - READ - WRITE
    cost = (uncached * 2.0 + READ * 0.5 + WRITE * 2.5 + usage.output_tokens * 8.0) / 1e6
    assert answer.cost_usd == pytest.approx(cost)
    assert answer.provider_cache_saved_usd == pytest.approx(READ * (2.0 - 0.5) / 1e6)


SPARK_TOML = """
[cache]
enabled = true
dir = "{cache_dir}"

[models.mini]
provider = "openai"
model_id = "gpt-4o-mini"
base_url = "{base_url}"
max_retries = 0

[pricing."gpt-4o-mini"]
input = 1.0
output = 4.0
cache_read = 0.25
as_of = 2026-11-01
"""


async def test_spark_toml_pricing_overrides_the_package(
    server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = tmp_path / "spark.toml"
    text = SPARK_TOML.format(cache_dir=tmp_path / "cache", base_url=server.openai_base_url)
    path.write_text(text, encoding="utf-8")
    model = from_profile("mini", config_path=path)
    scripted("openai", server)

    answer = await model.generate(QUESTION)
    await model.aclose()

    usage = answer.usage
    uncached = usage.input_tokens - READ
    expected = (uncached * 1.0 + READ * 0.25 + usage.output_tokens * 4.0) / 1e6
    assert answer.cost_usd == pytest.approx(expected)
    assert answer.cost_usd != pytest.approx(float(package_cost("openai", usage)))
    assert answer.provider_cache_saved_usd == pytest.approx(READ * 0.75 / 1e6)


async def test_an_unpriced_model_spends_nothing_known(
    models: Models, server: ProviderServer
) -> None:
    model = models("gemini", "gemini-unpriced-for-ledger-test")
    scripted("gemini", server)

    answer = await model.generate(QUESTION)

    assert answer.usage.cache_read_tokens == READ
    assert (answer.cost_usd, answer.provider_cache_saved_usd) == (None, None)
    stats = model.cache_manager.get_stats()
    assert (stats["misses"], stats["spent_cost_usd"], stats["provider_cache_saved_usd"]) == (
        1,
        0.0,
        0.0,
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_openai_cache_writes_are_read_and_priced(
    models: Models, server: ProviderServer, api: str, streamed: bool
) -> None:
    """Chat completions left `prompt_tokens_details.cache_write_tokens` out: writes were
    priced as plain input. Both OpenAI APIs report them within the prompt tokens."""
    options = {"api": "responses"} if api == "responses" else {}
    base = await models("openai", "gpt-4o-mini", enable_cache=False, **options).generate(QUESTION)
    model = models("openai", "gpt-4o-mini", **options)
    server.queue_usage(cache_read_tokens=READ, cache_write_tokens=WRITE)
    if streamed:
        assert "".join([chunk async for chunk in model.stream_text(QUESTION)])
    answer = await model.generate(QUESTION)
    assert answer.cached == streamed
    inputs = base.usage.input_tokens + READ + WRITE
    assert answer.usage == Usage(inputs, base.usage.output_tokens, READ, WRITE, 0)
    expected = package_cost("openai", answer.usage)
    assert answer.cost_usd == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize("provider", ["openai", "bedrock", "gemini"])
async def test_a_priced_call_without_cache_reads_saved_zero_not_unknown(
    models: Models, provider: str
) -> None:
    """None means unpriced: a priced call that read nothing from the prompt cache saved 0.0,
    on the miss and the hit as without a cache."""
    model_id = PRICED[provider][0]
    uncached = await models(provider, model_id, enable_cache=False).generate(QUESTION)
    model = models(provider, model_id)
    miss, hit = await model.generate(QUESTION), await model.generate(QUESTION)
    assert uncached.provider_cache_saved_usd == 0.0
    assert (miss.cached, hit.cached) == (False, True)
    assert miss.provider_cache_saved_usd == hit.provider_cache_saved_usd == 0.0
    unpriced = await models(provider, "a-model-with-no-price").generate(QUESTION)
    assert (unpriced.cost_usd, unpriced.provider_cache_saved_usd) == (None, None)
