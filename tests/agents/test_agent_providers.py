"""The agent's tool loop on each provider, through the real SDKs and the local server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from spark.agents import Agent, AgentConfig, total_cost_stats
from spark.models.base import Model
from spark.testing import ProviderServer

PROVIDERS = ["openai", "bedrock", "gemini"]
MakeModel = Callable[..., Model]


def lookup_stock(sku: str, warehouse: str = "main") -> dict[str, Any]:
    """Units in stock of one product.

    Args:
        sku: The product code.
        warehouse: Which warehouse to look in.
    """
    CALLS.append((sku, warehouse))
    return {"sku": sku, "warehouse": warehouse, "units": 17}


CALLS: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_loop_runs_the_tool_and_answers_with_its_result(
    provider: str,
    make_model: MakeModel,
    server: ProviderServer,
    tool_result_of: Callable[[str, dict[str, Any]], str],
) -> None:
    server.queue_tool_call("lookup_stock", {"sku": "A-1", "warehouse": "east"}, provider=provider)
    agent = Agent(AgentConfig(model=make_model(provider), tools=[lookup_stock]))

    result = await agent.run_detailed("How many A-1 are in the east warehouse?")

    assert CALLS == [("A-1", "east")]
    expected = '{"sku": "A-1", "warehouse": "east", "units": 17}'
    # The server's answer quotes the tool result it received (Gemini's inside its JSON wrapper).
    assert expected in result.text or json.dumps(expected)[1:-1] in result.text
    assert server.count(provider) == 2
    assert tool_result_of(provider, server.requests[-1].body) == expected
    assert result.stop_reason == "answer"
    (first, second) = result.steps
    assert [c.name for c in first.response.tool_calls] == ["lookup_stock"]
    assert first.tool_results[0].content == expected
    assert not first.tool_results[0].is_error
    assert second.response.tool_calls == ()
    assert result.stats.calls == 2
    assert result.stats.cache_hits == 0
    assert result.stats.total_cost > 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_second_identical_run_is_served_from_the_cache(
    provider: str, make_model: MakeModel, server: ProviderServer
) -> None:
    server.queue_tool_call("lookup_stock", {"sku": "B-2"}, provider=provider)
    first_agent = Agent(AgentConfig(model=make_model(provider), tools=[lookup_stock]))
    first = await first_agent.run_detailed("Stock of B-2?")
    server.reset()

    # A fresh agent and a fresh model on the same cache directory.
    second_agent = Agent(AgentConfig(model=make_model(provider), tools=[lookup_stock]))
    second = await second_agent.run_detailed("Stock of B-2?")

    assert server.count() == 0
    assert second.text == first.text
    assert CALLS == [("B-2", "main"), ("B-2", "main")]  # the tool really runs again
    stats = second_agent.get_cost_stats()
    assert stats.cache_hits == 2
    assert stats.calls == 2
    assert stats.total_cost == 0
    assert stats.input_tokens == stats.output_tokens == 0
    assert stats.saved_cost == pytest.approx(first_agent.get_cost_stats().total_cost)
    assert all(step.response.cached for step in second.steps)
    total = total_cost_stats()
    assert total.calls == 4
    assert total.cache_hits == 2
    assert total.total_cost == pytest.approx(first.stats.total_cost)
