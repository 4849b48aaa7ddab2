"""``agent.get_cost_stats()`` keeps the provider's prompt-cache savings apart from Spark's:
``provider_cache_saved_cost`` counts paid calls only, ``saved_cost`` Spark's hits only."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spark.agents import Agent, AgentConfig, total_cost_stats
from spark.models.base import Model
from spark.testing import ProviderServer
from spark.types import Price

MakeModel = Callable[..., Model]
PRICE = Price(input_per_million=2.0, output_per_million=8.0, cache_read_per_million=0.5)
READ = 4_000


@pytest.mark.parametrize("provider", ["openai", "bedrock", "gemini"])
async def test_prompt_cache_savings_are_their_own_figure(
    provider: str, make_model: MakeModel, server: ProviderServer
) -> None:
    server.queue_usage(cache_read_tokens=READ)
    buyer = Agent(AgentConfig(model=make_model(provider, pricing=PRICE)))
    paid = (await buyer.run_detailed("Summarise the manual.")).steps[0].response
    replayer = Agent(AgentConfig(model=make_model(provider, pricing=PRICE)))
    await replayer.run("Summarise the manual.")

    bought = buyer.get_cost_stats()
    assert bought.cache_read_tokens == READ
    assert bought.provider_cache_saved_cost == pytest.approx(READ * (2.0 - 0.5) / 1e6)
    assert bought.total_cost == pytest.approx(paid.cost_usd)
    assert bought.saved_cost == 0.0
    replayed = replayer.get_cost_stats()
    assert (replayed.cache_hits, replayed.total_cost) == (1, 0.0)
    assert replayed.saved_cost == pytest.approx(paid.cost_usd)
    assert (replayed.provider_cache_saved_cost, replayed.cache_read_tokens) == (0.0, 0)
    total = total_cost_stats()
    assert total.provider_cache_saved_cost == pytest.approx(bought.provider_cache_saved_cost)
